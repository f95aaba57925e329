"""One container request, two runtimes: Docker and Apptainer give a run the same mounts and the
same environment (container.py), and differ only where the runtimes do."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_docker.execution.runners.apptainer import apptainer_command, process_env
from llem_docker.execution.runners.container import PASSTHROUGH_ENV
from llem_docker.execution.runners.docker_engine import container_spec
from tests.orchestrator.test_apptainer_runner import opts as apptainer_opts
from tests.orchestrator.test_docker_runner import opts as docker_opts

SECRET = "hf_" + "RequestSecret000000000000000"


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize("hub", [None, Path("/fast/hub")])
@pytest.mark.parametrize("offline", [False, True])
def test_docker_and_apptainer_give_a_run_the_same_container(
    tmp_path: Path, hub: Path | None, offline: bool
) -> None:
    run = tmp_path / "study" / "runs" / "001_c1_pytorch_abc"
    run.mkdir(parents=True)
    caches = {
        "hf_cache_dir": Path("/c/hf"),
        "engine_cache_dir": Path("/c/engines"),
        "hub_cache_dir": hub,
        "hf_hub_offline": offline,
    }
    host = {"HF_TOKEN": SECRET, "PATH": "/usr/bin"}
    spec = container_spec(docker_opts(gpus=[], **caches), run, env=host, owner_pid=1)
    a_opts = apptainer_opts(tmp_path, gpus=[], **caches)
    argv = apptainer_command(a_opts, run, host_env=host)

    binds = dict(b.split(":", 1) for b in _pairs(argv, "--bind"))
    volumes = {src: v["bind"] for src, v in spec["volumes"].items()}
    assert binds == volumes  # the same mounts, to the same places
    env = dict(e.split("=", 1) for e in _pairs(argv, "--env"))
    docker_env = dict(spec["environment"])
    assert docker_env.pop("HOME") == "/tmp"  # Docker only: the user has no home in the image
    assert docker_env.pop("HF_TOKEN") == SECRET  # Docker: in the container's environment
    # GPUs are each runtime's own (Docker: device requests, renumbered; Apptainer: --nv and
    # the host's indices; with no GPUs it hides them all): their tests pin that down.
    assert env.pop("CUDA_VISIBLE_DEVICES") == ""
    assert env == docker_env  # the rest is written once
    assert SECRET not in " ".join(argv)  # Apptainer: through its own process's environment
    assert process_env(a_opts, host)["APPTAINERENV_HF_TOKEN"] == SECRET
    assert spec["command"] == argv[-3:] and _pairs(argv, "--pwd") == [spec["working_dir"]]
    assert set(PASSTHROUGH_ENV) & set(env) == set()


def test_a_host_with_rapl_says_so_to_the_run(tmp_path: Path) -> None:
    """So that a run that sees no powercap tree can tell "not mounted" from "no RAPL"."""
    run = tmp_path / "s" / "runs" / "r"
    run.mkdir(parents=True)
    for host_rapl in (False, True):
        spec = container_spec(docker_opts(host_rapl=host_rapl), run, env={}, owner_pid=1)
        argv = apptainer_command(apptainer_opts(tmp_path, host_rapl=host_rapl), run, host_env={})
        expected = {"LLEM_HOST_RAPL": "1"} if host_rapl else {}
        assert {k: v for k, v in spec["environment"].items() if k == "LLEM_HOST_RAPL"} == expected
        assert ("LLEM_HOST_RAPL=1" in _pairs(argv, "--env")) == host_rapl
