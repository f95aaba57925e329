"""ApptainerRunner: the command line pinned down, secrets kept off it, the handshake under the
`singularity` name, and what only a stand-in can give (tests/standins): a contained process that
ignores SIGTERM. tests/apptainer runs all the rest through the real apptainer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.images import LABEL_FINGERPRINT, LABEL_HARNESS, ImageMismatch
from llem_docker.execution.runners import make_runner
from llem_docker.execution.runners.apptainer import (
    ApptainerOptions,
    ApptainerRunner,
    ApptainerUnavailable,
    apptainer_command,
    process_env,
)
from llem_harness import __version__
from llem_harness.contract import schema_fingerprint
from tests.orchestrator.fakeharness import install
from tests.orchestrator.test_local_runner import gone
from tests.standins import install_apptainer, write_sif

SECRET = "hf_" + "S3cr3tValueThatMustNotLeak0000"


def opts(tmp_path: Path, **kw: Any) -> ApptainerOptions:
    base: dict[str, Any] = {
        "binary": "/usr/bin/apptainer",
        "sif": tmp_path / "llem-pytorch.sif",
        "gpus": None,
        "containall": False,
        "binds": (),
        "hf_cache_dir": Path("/home/u/.cache/huggingface"),
        "engine_cache_dir": Path("/home/u/.cache/llem/engines"),
        "hf_hub_offline": False,
    }
    return ApptainerOptions(**{**base, **kw})


def test_command_is_pinned(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "001_c1_pytorch_abcdef12"
    argv = apptainer_command(opts(tmp_path), run, host_env={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert argv == [
        "/usr/bin/apptainer", "exec", "--nv", "--cleanenv",
        "--bind", f"{run.resolve()}:/llem/run",
        "--bind", "/home/u/.cache/huggingface:/llem/hf-cache",
        "--bind", "/home/u/.cache/llem/engines:/llem/engine-cache",
        "--env", "HF_HOME=/llem/hf-cache",
        "--env", "LLEM_ENGINE_CACHE=/llem/engine-cache",
        "--env", "PYTHONUNBUFFERED=1",
        "--env", "PYTHONDONTWRITEBYTECODE=1",
        "--env", "CUDA_VISIBLE_DEVICES=2,3",  # SLURM's allocation, kept through --cleanenv
        "--pwd", "/llem/run",
        str(tmp_path / "llem-pytorch.sif"), "llem-harness", "run", "/llem/run",
    ]  # fmt: skip


def test_command_variants(tmp_path: Path) -> None:
    run = tmp_path / "r"
    none = apptainer_command(opts(tmp_path, gpus=[]), run, host_env={})
    assert "--nv" not in none and "CUDA_VISIBLE_DEVICES=" in none
    ids = apptainer_command(opts(tmp_path, gpus=["0", "2"]), run, host_env={})
    assert "--nv" in ids and "CUDA_VISIBLE_DEVICES=0,2" in ids  # not renumbered
    all_no_env = apptainer_command(opts(tmp_path), run, host_env={})
    assert not any(a.startswith("CUDA_VISIBLE_DEVICES") for a in all_no_env)
    more = apptainer_command(
        opts(tmp_path, containall=True, binds=("/scratch:/scratch:ro",), hf_hub_offline=True),
        run,
        host_env={},
    )
    assert "--containall" in more and "--cleanenv" not in more
    assert more[more.index("/scratch:/scratch:ro") - 1] == "--bind"
    assert "HF_HUB_OFFLINE=1" in more


def test_secrets_travel_in_the_environment_not_the_command(tmp_path: Path) -> None:
    host = {"PATH": "/usr/bin", "HF_TOKEN": SECRET}
    o = opts(tmp_path)
    assert SECRET not in " ".join(apptainer_command(o, tmp_path / "r", host_env=host))
    assert process_env(o, host)["APPTAINERENV_HF_TOKEN"] == SECRET
    s = process_env(opts(tmp_path, binary="/opt/bin/singularity"), host)
    assert s["SINGULARITYENV_HF_TOKEN"] == SECRET and "APPTAINERENV_HF_TOKEN" not in s
    assert "APPTAINERENV_HF_TOKEN" not in process_env(o, {"PATH": "/usr/bin"})


# -- from_settings: the checks before anything runs ----------------------------------------
def settings_with(tmp_path: Path, bin_dir: Path | None, **env: str) -> Settings:
    base = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}" if bin_dir else "/nonexistent",
        "HOME": str(tmp_path),
    }
    cfg = tmp_path / "xdg" / "llenergymeasure" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f"output: {{model_cache_dir: {tmp_path}/hf, engine_cache_dir: {tmp_path}/eng}}\n"
    )
    return Settings.load({**base, **env})


def good_labels() -> dict[str, str]:
    return {LABEL_FINGERPRINT: schema_fingerprint(), LABEL_HARNESS: __version__}


def test_missing_sif_names_make_sif(tmp_path: Path) -> None:
    s = settings_with(tmp_path, install_apptainer(tmp_path / "bin"))
    spec = RunnerSpec(
        "apptainer", str(tmp_path / "nope.sif"), "env LLEM_RUNNER_PYTORCH", None, "pytorch"
    )
    with pytest.raises(ImageMismatch, match=r"nope.sif` does not exist.*make sif"):
        make_runner(spec, s)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    sif = write_sif(tmp_path / "img.sif", good_labels())
    s = settings_with(tmp_path, None)
    spec = RunnerSpec("apptainer", str(sif), "--runner", None, "pytorch")
    with pytest.raises(ApptainerUnavailable, match=r"`apptainer` is not on PATH.*module load"):
        ApptainerRunner.from_settings(spec, s)
    runner = ApptainerRunner.from_settings(spec, s, check=False)  # a SLURM submit host
    assert runner.opts.binary == "apptainer"


def test_handshake_refuses_another_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = install_apptainer(tmp_path / "bin")
    sif = write_sif(tmp_path / "old.sif", {LABEL_FINGERPRINT: "0" * 16, LABEL_HARNESS: "0.0.1"})
    spec = RunnerSpec("singularity", str(sif), "--runner", None, "vllm")
    with pytest.raises(ImageMismatch, match=r"speaks exchange schema 0{16}.*make sif"):
        ApptainerRunner.from_settings(spec, settings_with(tmp_path, bin_dir))
    skipped = settings_with(tmp_path, bin_dir, LLEM_SKIP_IMAGE_CHECK="1")
    runner = ApptainerRunner.from_settings(spec, skipped)
    assert runner.kind == "singularity" and "LLEM_SKIP_IMAGE_CHECK" in capsys.readouterr().err
    info = runner.info()
    assert info.type == "singularity" and info.image == str(sif)
    assert info.image_digest and info.image_digest.startswith("sha256:")


# -- real processes through the stand-in ---------------------------------------------------
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "study" / "runs" / "001_c1_pytorch_abcdef12"
    d.mkdir(parents=True)
    return d


def test_timeout_kills_the_contained_processes(tmp_path: Path) -> None:
    bin_dir = install_apptainer(tmp_path / "bin")
    sif = write_sif(tmp_path / "img.sif", good_labels())
    s = settings_with(
        tmp_path, bin_dir, LLEM_STANDIN_HARNESS=" ".join([*install(tmp_path), "--mode", "stubborn"])
    )
    runner = ApptainerRunner.from_settings(
        RunnerSpec("apptainer", str(sif), "t", None, "pytorch"), s
    )
    runner.grace_s = 0.5
    d = run_dir(tmp_path)
    out = runner.run(d, timeout_s=3, on_event=lambda e: None)
    assert out.timed_out and "process group killed" in (out.detail or "")
    assert gone(int((d / "grandchild.pid").read_text()))


def test_a_relative_sif_is_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = Settings.load({"LLEM_RUNNER_VLLM": "singularity:images/x.sif"}).runner("vllm")
    assert spec.target == str(tmp_path / "images" / "x.sif")


def test_a_hub_cache_outside_the_hf_home_is_bound_too(tmp_path: Path) -> None:
    """$HF_HUB_CACHE on a fast disk: the run sees it through HF_HUB_CACHE, not hf-cache/hub."""
    argv = apptainer_command(
        opts(tmp_path, hub_cache_dir=Path("/fast/hub")), tmp_path / "r", host_env={}
    )
    assert "/fast/hub:/llem/hf-hub" in argv and "HF_HUB_CACHE=/llem/hf-hub" in argv
    plain = apptainer_command(opts(tmp_path), tmp_path / "r", host_env={})
    assert not any("hf-hub" in a for a in plain)
