"""Ctrl+C and SIGTERM during a Docker study: the run and the study are marked interrupted,
the container is gone, and `--resume` finishes the study."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import (
    EXE,
    LABEL,
    RUN_LABEL,
    cli_env,
    manifest,
    run_cli,
    tiny_study,
    user_config,
    wait_for,
    write_study,
)

pytestmark = pytest.mark.docker


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, dict[str, str]]:
    study = write_study(
        tmp_path / "s.yaml",
        tiny_study("interrupt", n_prompts=48, max_output_tokens=64, sweep={"batch_size": [1, 4]}),
    )
    env = cli_env(user_config(tmp_path))
    proc = subprocess.Popen(
        [EXE, "run", str(study)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, study, env


def _wait_running(engine: Any, tmp_path: Path) -> Path:
    """Until the first run's own container is up and its harness has begun warming up."""
    results = tmp_path / "results"

    def warming() -> bool:
        logs = sorted(results.glob("*/runs/*/container.log")) if results.exists() else []
        if not logs or '"phase": "warmup"' not in logs[0].read_text():
            return False
        first = logs[0].parent.name
        running = engine.containers.list(filters={"label": f"{RUN_LABEL}={first}"})
        return bool(running) and not (logs[0].parent / "result.json").exists()

    wait_for(warming, 240, "the first run to warm up inside its container")
    (study,) = results.iterdir()
    return study


def test_ctrl_c_marks_interrupted_and_resume_completes(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    proc, study, env = _start(tmp_path)
    study_dir = _wait_running(engine, tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert not engine.containers.list(all=True, filters={"label": LABEL})
    man = manifest(study_dir)
    assert man["state"] == "interrupted"
    first, second = man["runs"]
    assert first["state"] == "interrupted" and first["error"]["type"] == "Interrupted"
    assert second["state"] == "pending"

    done = run_cli(["run", str(study), "--resume", str(study_dir)], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    man = manifest(study_dir)
    assert man["state"] == "completed" and len(man["resumed_at"]) == 1
    assert [r["state"] for r in man["runs"]] == ["completed", "completed"]
    assert (study_dir / "study.json").exists()


def test_resume_refuses_an_edited_study(tmp_path: Path, engine: Any, test_image: str) -> None:
    proc, study, env = _start(tmp_path)
    study_dir = _wait_running(engine, tmp_path)
    proc.send_signal(signal.SIGTERM)  # a scheduler's stop: handled like Ctrl+C
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert manifest(study_dir)["state"] == "interrupted"
    assert not engine.containers.list(all=True, filters={"label": LABEL})
    study.write_text(study.read_text().replace("n_prompts: 48", "n_prompts: 40"))
    refused = run_cli(["run", str(study), "--resume", str(study_dir)], env)
    assert refused.returncode == 2
    assert "no longer matches" in " ".join(refused.stderr.split())


def test_second_ctrl_c_exits_at_once(tmp_path: Path, engine: Any, test_image: str) -> None:
    proc, _, _ = _start(tmp_path)
    _wait_running(engine, tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 8  # well inside the 10 s stop grace
    assert proc.returncode != 0
    wait_for(
        lambda: not engine.containers.list(all=True, filters={"label": LABEL}),
        30,
        "the container to be removed",
    )
