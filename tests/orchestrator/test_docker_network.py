"""`docker.network`: which network a run's container gets, and a named one that does not exist
refused before any run. tests/docker/test_docker_network.py checks it on a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.runners.docker import _hub
from llem_docker.execution.runners.docker_engine import container_spec, resolve_network
from llem_harness.host_api import ExperimentConfig, RunIdentity, RunRequest, needs_hub
from tests.orchestrator.test_docker_runner import opts, run_dir


class Networks:
    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def get(self, name: str) -> Any:
        self.asked.append(name)
        if name not in self.names:
            raise NotFound(f"network {name} not found")
        return object()


class Client:
    def __init__(self, *names: str) -> None:
        self.networks = Networks(set(names))


@pytest.mark.parametrize(
    ("value", "offline", "expected"),
    [
        ("auto", True, "none"),  # nothing may reach the hub: loopback only
        ("auto", False, "auto"),  # decided run by run: the runs that may need the hub
        ("none", False, "none"),
        ("bridge", True, "bridge"),
        ("host", False, "host"),
        (" none ", False, "none"),
    ],
)
def test_the_network_a_setting_gives(value: str, offline: bool, expected: str | None) -> None:
    client = Client()
    assert resolve_network(client, value, hf_hub_offline=offline, source="x") == expected
    assert client.networks.asked == []  # the built-in ones need no question to the engine


def test_an_engine_that_cannot_use_the_name_is_a_config_error() -> None:
    class Ambiguous(Networks):
        def get(self, name: str) -> Any:
            raise APIError("network lab is ambiguous (2 matches found based on name)")

    client = Client()
    client.networks = Ambiguous(set())
    with pytest.raises(ConfigError) as info:
        resolve_network(client, "lab", hf_hub_offline=False, source="cfg.yaml")
    assert info.value.key == "docker.network" and "ambiguous" in info.value.message


def test_a_named_network_must_exist() -> None:
    assert resolve_network(Client("lab"), "lab", hf_hub_offline=False, source="x") == "lab"
    with pytest.raises(ConfigError) as info:
        resolve_network(Client("lab"), "labb", hf_hub_offline=False, source="cfg.yaml")
    err = info.value
    assert err.key == "docker.network" and err.source == "cfg.yaml"
    assert "`labb` does not exist" in err.message
    assert "docker network create labb" in (err.fix or "")


def test_the_spec_sets_the_network_only_when_asked(tmp_path: Path) -> None:
    default = container_spec(opts(), run_dir(tmp_path), env={}, owner_pid=1)
    assert "network_mode" not in default
    spec = container_spec(opts(network="none"), tmp_path / "s" / "runs" / "r", env={}, owner_pid=1)
    assert spec["network_mode"] == "none"


@pytest.mark.parametrize(("hub", "expected"), [(True, None), (False, "none")])
def test_auto_gives_no_network_to_a_run_that_cannot_need_the_hub(
    tmp_path: Path, hub: bool, expected: str | None
) -> None:
    spec = container_spec(
        opts(network="auto"), run_dir(tmp_path), env={}, owner_pid=1, needs_hub=hub
    )
    assert spec.get("network_mode") == expected


@pytest.mark.parametrize(
    ("model", "weights", "expected"),
    [
        ("llem/tiny-llama", "dummy", False),  # shipped config, byte-level tokenizer
        ("meta-llama/Llama-3.2-1B", "dummy", False),
        ("meta-llama/Llama-3.2-1B", "pretrained", True),
        ("some-org/unshipped", "dummy", True),  # (read from the local cache: not claimed)
        ("llem/smollm2-135m-instruct", "pretrained", True),  # (GGUF: not claimed)
    ],
)
def test_which_runs_may_need_the_hub(model: str, weights: str, expected: bool) -> None:
    assert needs_hub(model, weights) is expected
    assert needs_hub(model, weights, engine_args=True)  # may name a draft model


def test_the_runner_reads_the_run_from_its_experiment_json(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    assert _hub(d) is True  # no experiment.json: it may
    config = ExperimentConfig(model="llem/tiny-llama", weights="dummy", backend="pytorch")
    run = RunIdentity(study_name="s", study_id="s_1", design_hash="d", run_id=d.name, index=1,
                      cycle=1, config_hash="c")  # fmt: skip
    request = RunRequest(config=config, run=run)
    (d / "experiment.json").write_text(request.model_dump_json())
    assert _hub(d) is False
    doc = request.model_dump(mode="json")
    doc["config"]["pytorch"] = {"engine_args": {"assistant_model": "org/draft"}}
    (d / "experiment.json").write_text(RunRequest.model_validate(doc).model_dump_json())
    assert _hub(d) is True


def test_the_user_config_key(tmp_path: Path) -> None:
    assert Settings.load({"XDG_CONFIG_HOME": str(tmp_path)}).docker.network == "auto"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("docker: {network: ''}\n")
    with pytest.raises(ConfigError):
        Settings.load({"LLEM_CONFIG": str(cfg)})
