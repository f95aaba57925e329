"""The Apptainer path for real: `make sif` of the CPU test image, the apptainer runner running
studies through `apptainer exec`, the handshake against real SIF labels, Ctrl+C and timeouts
leaving no process behind, apptainer's own failures named, and `doctor`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.images import LABEL_FINGERPRINT, LABEL_HARNESS, ImageMismatch
from llem_docker.execution.runners.apptainer import ApptainerRunner, process_env, read_labels
from llem_harness import __version__
from llem_harness.contract import ExperimentResult, schema_fingerprint
from tests.apptainer.conftest import scratch_sif
from tests.conftest import REPO
from tests.docker.conftest import (
    EXE,
    cli_env,
    manifest,
    run_cli,
    tiny_study,
    user_config,
    wait_for,
    write_study,
)

pytestmark = pytest.mark.apptainer
SECRET = "hf_" + "ApptainerSecret00000000000000"


def config(tmp_path: Path, sif: Path, **apptainer: Any) -> Path:
    return user_config(tmp_path, runners={"pytorch": f"apptainer:{sif}"}, apptainer=apptainer)


def processes(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (this process aside)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{proc.name}: {cmd}")
    return found


def test_make_sif_builds_a_real_image_with_the_labels(apptainer: str, test_sif: Path) -> None:
    assert b"SIF_MAGIC" in test_sif.read_bytes()[:64]
    labels = read_labels(apptainer, test_sif)
    assert labels[LABEL_FINGERPRINT] == schema_fingerprint()
    assert labels[LABEL_HARNESS] == __version__ and labels["llem.backend"] == "pytorch"
    pinned = (REPO / "images" / "pytorch" / "Dockerfile").read_text()
    assert f"ARG TRANSFORMERS_VERSION={labels['llem.engine.transformers']}\n" in pinned


def test_a_study_runs_through_apptainer(tmp_path: Path, test_sif: Path) -> None:
    """Two runs with the default GPU request (`--nv` on a host without a driver: apptainer
    warns and goes on), the secret in the environment only, the results the user's."""
    study = write_study(tmp_path / "s.yaml", tiny_study("appt", sweep={"batch_size": [1, 2]}))
    env = cli_env(config(tmp_path, test_sif), HF_TOKEN=SECRET)
    proc = run_cli(["run", str(study), "--profile", "quick"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = (tmp_path / "results").iterdir()
    runs = sorted((study_dir / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        res = ExperimentResult.model_validate_json((run / "result.json").read_text())
        assert res.tokens.output > 0 and res.throughput_tokens_per_s > 0
        assert res.runner.type == "apptainer" and res.runner.image == str(test_sif)
        assert res.runner.image_digest and res.runner.image_digest.startswith("sha256:")
        assert res.energy.total_j is None and res.energy.unavailable_reason
        assert (run / "timeseries.parquet").stat().st_uid == os.getuid()
    summary = json.loads((study_dir / "study.json").read_text())
    assert summary["runners"]["pytorch"]["kind"] == "apptainer"
    for path in study_dir.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            assert SECRET not in path.read_text(errors="replace"), path


def test_the_container_gets_the_secret_and_a_clean_environment(
    tmp_path: Path, test_sif: Path
) -> None:
    """The runner's own command line and environment, with the harness swapped for a probe:
    the secret arrives (as APPTAINERENV_HF_TOKEN), the host's other variables do not
    (--cleanenv), the binds and --pwd hold."""
    settings = Settings.load(
        cli_env(config(tmp_path, test_sif), HF_TOKEN=SECRET, LLEM_PROBE_LEAK="leak")
    )
    runner = ApptainerRunner.from_settings(
        RunnerSpec("apptainer", str(test_sif), "test", None, "pytorch"), settings
    )
    run = tmp_path / "runs" / "001_c1_pytorch_abcdef12"
    run.mkdir(parents=True)
    argv = runner.command(run)
    assert SECRET not in " ".join(argv)
    probe = 'echo "$HF_TOKEN|${LLEM_PROBE_LEAK:-unset}|$HF_HOME|$(pwd)" > /llem/run/probe'
    argv = [*argv[: argv.index(str(test_sif)) + 1], "sh", "-c", probe]
    subprocess.run(argv, env=process_env(runner.opts, runner.env), check=True, timeout=120)
    assert (run / "probe").read_text().strip() == f"{SECRET}|unset|/llem/hf-cache|/llem/run"


def test_ctrl_c_leaves_no_process(tmp_path: Path, test_sif: Path) -> None:
    study = write_study(
        tmp_path / "s.yaml", tiny_study("appt-int", n_prompts=400, max_output_tokens=64)
    )
    env = cli_env(config(tmp_path, test_sif, gpus="none"))
    proc = subprocess.Popen(
        [EXE, "run", str(study), "--profile", "quick"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = tmp_path / "results"

    def measuring() -> bool:
        logs = list(results.glob("*/runs/*/container.log")) if results.exists() else []
        return bool(logs) and '"phase": "warmup"' in logs[0].read_text()

    wait_for(measuring, 240, "the run to warm up inside apptainer")
    # The contained harness: apptainer's starter renames itself, the harness keeps its argv.
    assert processes("/llem/run"), "no harness process inside apptainer"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert processes("/llem/run") == [] and processes(str(results)) == []
    (study_dir,) = results.iterdir()
    (run,) = manifest(study_dir)["runs"]
    assert run["state"] == "interrupted" and run["error"]["type"] == "Interrupted"


def test_a_timeout_leaves_no_process(tmp_path: Path, test_sif: Path) -> None:
    study = write_study(
        tmp_path / "s.yaml", tiny_study("appt-to", n_prompts=400, max_output_tokens=64)
    )
    cfg = user_config(
        tmp_path,
        runners={"pytorch": f"apptainer:{test_sif}"},
        apptainer={"gpus": "none"},
        execution={"experiment_timeout_seconds": 12},
    )
    proc = run_cli(["run", str(study), "--profile", "quick"], cli_env(cfg))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    (study_dir,) = (tmp_path / "results").iterdir()
    (run,) = manifest(study_dir)["runs"]
    assert run["state"] == "failed" and run["error"]["type"] == "Timeout"
    assert processes(str(study_dir)) == [] and processes("/llem/run") == []


def test_the_handshake_reads_real_labels(apptainer: str, tmp_path: Path) -> None:
    old = scratch_sif(
        apptainer, tmp_path / "old.sif", {LABEL_FINGERPRINT: "0" * 16, LABEL_HARNESS: "0.0.1"}
    )
    settings = Settings.load(cli_env(user_config(tmp_path)))
    spec = RunnerSpec("apptainer", str(old), "--runner", None, "pytorch")
    with pytest.raises(ImageMismatch, match=r"speaks exchange schema 0{16}.*make sif"):
        ApptainerRunner.from_settings(spec, settings)
    good = scratch_sif(
        apptainer,
        tmp_path / "good.sif",
        {LABEL_FINGERPRINT: schema_fingerprint(), LABEL_HARNESS: __version__},
    )
    runner = ApptainerRunner.from_settings(
        RunnerSpec("apptainer", str(good), "--runner", None, "pytorch"), settings
    )
    info = runner.info()
    assert info.type == "apptainer" and info.image_digest and info.image_digest[:7] == "sha256:"


def test_apptainers_own_failure_is_named(apptainer: str, tmp_path: Path) -> None:
    """Exit 255 with no word from the harness: apptainer itself failed (the image is gone by
    the time the run starts)."""
    sif = scratch_sif(
        apptainer,
        tmp_path / "img.sif",
        {LABEL_FINGERPRINT: schema_fingerprint(), LABEL_HARNESS: __version__},
    )
    settings = Settings.load(cli_env(user_config(tmp_path)))
    runner = ApptainerRunner.from_settings(
        RunnerSpec("apptainer", str(sif), "t", None, "pytorch"), settings
    )
    sif.unlink()
    run = tmp_path / "runs" / "001_c1_pytorch_abcdef12"
    run.mkdir(parents=True)
    out = runner.run(run, timeout_s=60, on_event=lambda e: None)
    assert out.exit_code == 255 and out.failure == "ApptainerError"
    assert out.detail and "img.sif" in out.detail


def test_doctor_reports_the_real_apptainer(apptainer: str, tmp_path: Path, test_sif: Path) -> None:
    old = scratch_sif(apptainer, tmp_path / "old.sif", {LABEL_FINGERPRINT: "f" * 16})
    env = cli_env(config(tmp_path, test_sif), LLEM_RUNNER_VLLM=f"apptainer:{old}")
    proc = run_cli(["doctor", "--no-gpu-probe"], env, timeout=300)
    text = " ".join(proc.stdout.split())
    assert "apptainer version 1." in text, proc.stdout
    lines = proc.stdout.splitlines()
    pytorch = next(line for line in lines if "pytorch runner" in line)
    vllm = next(line for line in lines if "vllm runner" in line)
    assert " ok " in f" {pytorch} " and "fail" in vllm, proc.stdout
