"""User config location, runner resolution and its precedence, env overrides, `config` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.config.settings import Settings, default_image, parse_runner
from llem_docker.config.user import user_config_path
from llem_docker.errors import ConfigError
from tests.orchestrator.cliutil import invoke


def write_config(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(body)
    return {"LLEM_CONFIG": str(path)}


def test_config_location_rules(tmp_path: Path) -> None:
    assert user_config_path({"LLEM_CONFIG": "/x/c.yaml"}) == (Path("/x/c.yaml"), "env LLEM_CONFIG")
    p, rule = user_config_path({"XDG_CONFIG_HOME": "/xdg"})
    assert p == Path("/xdg/llenergymeasure/config.yaml") and rule == "XDG_CONFIG_HOME"
    p, rule = user_config_path({})
    assert p.name == "config.yaml" and p.parent.name == "llenergymeasure"
    assert rule == "default location"


def test_missing_user_config_is_fine() -> None:
    s = Settings.load(env={"XDG_CONFIG_HOME": "/nonexistent"})
    assert s.runner("pytorch").kind == "docker"
    assert s.runner("pytorch").target == default_image("pytorch")
    assert s.measurement.carbon_intensity_gco2_kwh == 400.0


def test_explicit_llem_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Settings.load(env={"LLEM_CONFIG": str(tmp_path / "nope.yaml")})


@pytest.mark.parametrize(
    ("env_runner", "file_runner", "flag", "expected", "source"),
    [
        ("local", "apptainer:/s.sif", "docker", "local", "env LLEM_RUNNER_PYTORCH"),
        (None, "apptainer:/s.sif", "docker:img", "apptainer:/s.sif", "user config"),
        (None, None, "docker:img:1", "docker:img:1", "--runner"),
        (None, None, None, "docker:llenergymeasure/pytorch:0.1.0", "default"),
    ],
)
def test_runner_precedence(
    tmp_path: Path,
    env_runner: str | None,
    file_runner: str | None,
    flag: str | None,
    expected: str,
    source: str,
) -> None:
    env = write_config(tmp_path, f"runners: {{pytorch: '{file_runner}'}}\n" if file_runner else "")
    if env_runner:
        env["LLEM_RUNNER_PYTORCH"] = env_runner
    spec = Settings.load(env=env, cli_runner=flag).runner("pytorch")
    assert spec.label == expected
    assert spec.source.startswith(source)


def test_docker_image_from_user_config(tmp_path: Path) -> None:
    env = write_config(tmp_path, "images: {vllm: 'reg/org/llem-vllm:9'}\n")
    spec = Settings.load(env=env).runner("vllm")
    assert (spec.kind, spec.target, spec.target_source) == (
        "docker",
        "reg/org/llem-vllm:9",
        "user config images.vllm",
    )


@pytest.mark.parametrize("value", ["podman", "docker:", "apptainer", "singularity:", "local:x"])
def test_bad_runner_values(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_runner(value, origin="env LLEM_RUNNER_VLLM", fix_where="env LLEM_RUNNER_VLLM")
    assert "env LLEM_RUNNER_VLLM" in info.value.render()


@pytest.mark.parametrize(
    ("value", "kind", "target"),
    [
        ("local", "local", None),
        ("docker", "docker", None),
        ("docker:a/b:1", "docker", "a/b:1"),
        ("apptainer:/x.sif", "apptainer", "/x.sif"),
        ("singularity:y.sif", "singularity", "y.sif"),
    ],
)
def test_runner_grammar(value: str, kind: str, target: str | None) -> None:
    assert parse_runner(value, origin="t", fix_where="t") == (kind, target)


def test_two_local_backends_is_a_hard_error() -> None:
    s = Settings.load(env={"LLEM_RUNNER_PYTORCH": "local"}, cli_runner="local")
    with pytest.raises(ConfigError) as info:
        s.runners(["pytorch", "vllm"])
    text = info.value.render()
    assert "pytorch, vllm" in text and "LLEM_RUNNER_VLLM=docker" in text
    assert s.runners(["pytorch"])["pytorch"].kind == "local"


def test_env_overrides_carbon_and_pue() -> None:
    s = Settings.load(env={"LLEM_CARBON_INTENSITY": "55.5", "LLEM_DATACENTER_PUE": "1.3"})
    assert s.measurement.carbon_intensity_gco2_kwh == 55.5
    assert s.source("measurement.carbon_intensity_gco2_kwh") == "env LLEM_CARBON_INTENSITY"
    assert s.measurement.datacenter_pue == 1.3


@pytest.mark.parametrize(
    ("var", "value"), [("LLEM_CARBON_INTENSITY", "lots"), ("LLEM_DATACENTER_PUE", "0.5")]
)
def test_bad_env_overrides(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env={var: value})
    assert var in info.value.render()


def test_user_config_errors_name_file_and_key(tmp_path: Path) -> None:
    env = write_config(tmp_path, "docker:\n  gpus: all\n  shm: 1g\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(env=env)
    assert info.value.key == "docker.shm" and info.value.line == 3
    env = write_config(tmp_path, "runners: {pytorch: docker}\nhf_token: hf_x\n")
    with pytest.raises(ConfigError, match="credential"):
        Settings.load(env=env)


def test_config_command_shows_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runners: {vllm: 'docker:x/y:1'}\nexecution: {config_gap_seconds: 5}\n")
    monkeypatch.setenv("LLEM_CONFIG", str(cfg))
    monkeypatch.setenv("LLEM_RUNNER_PYTORCH", "local")
    monkeypatch.setenv("LLEM_DATACENTER_PUE", "1.1")
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETSECRETSECRETSECRET")
    r = invoke(capsys, monkeypatch, "config", "--json")
    assert r.code == 0, r.err
    rows = {row["key"]: row for row in json.loads(r.out)}
    assert rows["runners.pytorch"]["value"] == "local"
    assert rows["runners.pytorch"]["source"] == "env LLEM_RUNNER_PYTORCH"
    assert rows["runners.vllm"]["value"] == "docker:x/y:1"
    assert rows["runners.tensorrt"]["source"] == "default"
    assert rows["execution.config_gap_seconds"]["value"] == 5
    assert rows["execution.config_gap_seconds"]["source"].startswith("user config")
    assert rows["execution.cycle_gap_seconds"]["source"] == "default"
    assert rows["measurement.datacenter_pue"]["source"] == "env LLEM_DATACENTER_PUE"
    assert rows["env HF_TOKEN"]["value"] == "set (hidden)"
    assert "SECRET" not in r.out
    r = invoke(capsys, monkeypatch, "config")
    assert r.code == 0 and "env LLEM_RUNNER_PYTORCH" in r.out


def test_caches_follow_hugging_face_and_xdg_conventions(tmp_path: Path) -> None:
    base = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    s = Settings.load(env={**base, "HF_HOME": "/scratch/hf"})
    assert s.output.model_cache_dir == "/scratch/hf"
    assert s.source("output.model_cache_dir") == "env HF_HOME"
    assert s.output.hub_cache_dir is None
    s = Settings.load(env={**base, "XDG_CACHE_HOME": "/xdg", "HF_HUB_CACHE": "/fast/hub"})
    assert s.output.model_cache_dir == "/xdg/huggingface"
    assert s.source("output.model_cache_dir").startswith("env XDG_CACHE_HOME")
    assert s.output.engine_cache_dir == "/xdg/llem/engines"
    assert (s.output.hub_cache_dir, s.source("output.hub_cache_dir")) == (
        "/fast/hub",
        "env HF_HUB_CACHE",
    )
    s = Settings.load(env=base)
    assert s.output.model_cache_dir == "~/.cache/huggingface"
    assert s.output.engine_cache_dir == "~/.cache/llem/engines"
    env = write_config(tmp_path, "output: {model_cache_dir: /mine/hf}\n")
    s = Settings.load(env={**env, "HF_HOME": "/scratch/hf"})  # the user config wins
    assert s.output.model_cache_dir == "/mine/hf"
    assert s.source("output.model_cache_dir").startswith("user config")


def test_config_command_shows_the_cache_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("LLEM_CONFIG", raising=False)
    monkeypatch.setenv("HF_HOME", "/scratch/hf")
    r = invoke(capsys, monkeypatch, "config", "--json")
    rows = {row["key"]: row for row in json.loads(r.out)}
    assert rows["output.model_cache_dir"]["value"] == "/scratch/hf"
    assert rows["output.model_cache_dir"]["source"] == "env HF_HOME"


def test_local_runner_keeps_the_users_hf_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It once overwrote HF_HOME with ~/.cache/huggingface."""
    from llem_docker.config.settings import RunnerSpec
    from llem_docker.execution.runners import make_runner
    from llem_docker.execution.runners.local import LocalRunner

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("LLEM_CONFIG", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", "/scratch/hf")
    runner = make_runner(RunnerSpec("local", None, "--runner"), Settings.load())
    assert isinstance(runner, LocalRunner)
    assert runner.env["HF_HOME"] == "/scratch/hf" and "HF_HUB_CACHE" not in runner.env
    monkeypatch.setenv("HF_HUB_CACHE", "/fast/hub")
    runner = make_runner(RunnerSpec("local", None, "--runner"), Settings.load())
    assert isinstance(runner, LocalRunner) and runner.env["HF_HUB_CACHE"] == "/fast/hub"


def test_several_backends_may_share_local_where_one_environment_has_every_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vLLM install brings torch and transformers: pytorch and vllm can both run locally
    there (the lent GPU machine); where an engine is missing it stays an error naming it."""
    import llem_docker.config.settings as settings_mod

    env = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    monkeypatch.setattr(settings_mod, "engine_installed", lambda backend: True)
    both = Settings.load(env=env, cli_runner="local").runners(["pytorch", "vllm"])
    assert {r.kind for r in both.values()} == {"local"}
    monkeypatch.setattr(settings_mod, "engine_installed", lambda backend: backend != "vllm")
    with pytest.raises(ConfigError, match="lacks the engine of vllm") as info:
        Settings.load(env=env, cli_runner="local").runners(["pytorch", "vllm"])
    assert "LLEM_RUNNER_VLLM=docker" in str(info.value)
