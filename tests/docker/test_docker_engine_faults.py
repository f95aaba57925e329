"""Faults outside llem-docker, through real engines: a run's container killed with `docker
kill`, and the Docker engine itself stopping mid-study. Each ends recorded, with a message
that says what happened, and `--resume` completes the study afterwards.

The engine-stop test never touches the shared engine: it uses a private second dockerd
(tests/docker/second_engine.py; the `private_engine` fixture of conftest.py, which loads the
test image into it once per session) and points the CLI at it with DOCKER_HOST.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from llem_docker.execution.runners.docker_engine import container_name
from tests.docker.conftest import (
    EXE,
    LABEL,
    cli_env,
    manifest,
    run_cli,
    tiny_study,
    user_config,
    wait_for,
    write_study,
)
from tests.docker.second_engine import SecondEngine

pytestmark = pytest.mark.docker


def _start(tmp_path: Path, name: str, **env: str) -> tuple[subprocess.Popen[str], Path, dict]:
    """A two-run study (each run ~10 s on a CPU), started in the background."""
    study = write_study(tmp_path / "s.yaml", tiny_study(name, sweep={"batch_size": [1, 4]}))
    cli = cli_env(user_config(tmp_path), **env)
    proc = subprocess.Popen(
        [EXE, "run", str(study)], env=cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, study, cli


def _wait_loading(tmp_path: Path, proc: subprocess.Popen[str]) -> tuple[Path, str]:
    """Until the first run's harness is loading its model (seconds before it can finish):
    the study folder and that run's id."""
    results = tmp_path / "results"
    seen: list[Path] = []

    def loading() -> bool:
        assert proc.poll() is None, "the study ended before its first run got going"
        logs = sorted(results.glob("*/runs/*/container.log")) if results.exists() else []
        if logs and '"phase": "load"' in logs[0].read_text():
            seen.append(logs[0])
            return True
        return False

    wait_for(loading, 240, "the first run to load its model")
    run_dir = seen[0].parent
    return run_dir.parent.parent, run_dir.name


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        msg = f"llem-docker still running after {timeout} s:\n{err[-3000:]}"
        raise AssertionError(msg) from None


def _resume_completes(study: Path, study_dir: Path, env: dict[str, str]) -> None:
    done = run_cli(["run", str(study), "--resume", str(study_dir)], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    man = manifest(study_dir)
    assert man["state"] == "completed" and len(man["resumed_at"]) == 1
    assert [r["state"] for r in man["runs"]] == ["completed", "completed"]


def test_docker_kill_fails_the_run_the_study_goes_on_and_resume_completes(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    proc, study, env = _start(tmp_path, "killed")
    try:
        study_dir, run_id = _wait_loading(tmp_path, proc)
        engine.containers.get(container_name(study_dir.name, run_id)).kill()  # `docker kill`
        out, err = _finish(proc, 300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    assert "Traceback" not in err
    man = manifest(study_dir)
    killed, second = man["runs"]
    assert killed["run_id"] == run_id and killed["state"] == "failed"
    assert killed["error"]["type"] == "KilledExternally" and killed["exit_code"] == 137
    message = killed["error"]["message"]
    for words in ("SIGKILL", "exit code 137", "docker kill", "not an OOM kill", "--resume"):
        assert words in message, words
    assert second["state"] == "completed"  # the study went on
    assert man["state"] == "failed"
    _resume_completes(study, study_dir, env)


def test_docker_stop_in_a_runs_first_moments_is_killed_externally(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    """`docker stop` as soon as the container runs, most likely before the harness has
    installed its SIGTERM handler (exit 143, no error.json): KilledExternally, never
    HarnessCrashed. Should the stop land later, the harness's own record is kept instead."""
    proc, study, env = _start(tmp_path, "stopped")
    stopped: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not stopped:  # polled tightly: the handler is in within about half a second
            assert proc.poll() is None, "the study ended before its first run got going"
            assert time.monotonic() < deadline, "the first run's container never ran"
            for c in engine.containers.list(filters={"label": LABEL, "status": "running"}):
                c.stop(timeout=10)  # `docker stop`
                stopped.append(c.labels["llem.run"])
                break
            time.sleep(0.02)
        out, err = _finish(proc, 300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    (study_dir,) = (tmp_path / "results").iterdir()
    man = manifest(study_dir)
    first, second = man["runs"]
    assert first["run_id"] == stopped[0] and first["state"] == "failed"
    error = first["error"]
    assert error["type"] == "KilledExternally", error
    recorded = (study_dir / "runs" / first["run_id"] / "error.json").exists()
    if recorded:  # the handler was in first: the harness said where it was stopped
        assert "recorded that and stopped" in error["message"], error
    else:  # the case of this test: nothing recorded, the runner's exit status tells
        assert first["exit_code"] == 143 and "first moments" in error["message"], error
    assert "--resume" in error["message"]
    assert second["state"] == "completed"
    _resume_completes(study, study_dir, env)


def test_engine_stop_aborts_the_study_and_resume_completes(
    tmp_path: Path, private_engine: SecondEngine
) -> None:
    proc, study, env = _start(tmp_path, "engine-stop", DOCKER_HOST=private_engine.host)
    try:
        study_dir, run_id = _wait_loading(tmp_path, proc)
        t0 = time.monotonic()
        private_engine.terminate()  # dockerd gets SIGTERM mid-run
        out, err = _finish(proc, 90)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    assert took < 60, f"the study took {took:.0f} s to stop"
    assert "Traceback" not in err
    man = manifest(study_dir)
    assert man["state"] == "aborted"
    assert all(r["state"] not in ("running", "pending") for r in man["runs"])
    lost, rest = man["runs"]
    assert lost["run_id"] == run_id and lost["state"] == "failed"
    assert lost["error"]["type"] == "EngineUnavailable"
    resume = f"llem-docker run {study} --resume {study_dir}"
    assert resume in lost["error"]["message"] and "docker info" in lost["error"]["message"]
    assert rest["state"] == "skipped" and "went away" in rest["error"]["message"]
    said = " ".join(err.split())
    assert "went away" in said and resume in said and "docker info" in said

    private_engine.wait_stopped()
    private_engine.start()  # the engine comes back, on the same data root
    _resume_completes(study, study_dir, env)
    left = private_engine.client().containers.list(all=True, filters={"label": LABEL})
    assert not left, [c.name for c in left]
