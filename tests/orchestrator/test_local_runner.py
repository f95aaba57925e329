"""LocalRunner against real subprocesses: events, container.log, exit codes, and that a
timeout or Ctrl+C leaves no process behind (grandchildren included)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import LlemError
from llem_docker.execution.runners import make_runner
from llem_docker.execution.runners.local import DEFAULT_COMMAND, LocalRunner
from llem_harness.contract import ExperimentResult
from tests.orchestrator.fakeharness import install


def runner(tmp_path: Path, mode: str, **kw: Any) -> LocalRunner:
    return LocalRunner(command=[*install(tmp_path), "--mode", mode], **kw)


def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "001_c1_pytorch_abcdef12"
    d.mkdir(parents=True)
    return d


def gone(pid: int, within_s: float = 5.0) -> bool:
    """The process no longer runs: os.kill(pid, 0) raises, or it is a zombie (dead, and
    waiting for PID 1, its new parent, to reap it; some container inits reap slowly)."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.02)
    return False


def test_events_are_streamed_and_everything_is_logged(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    seen: list[tuple[dict[str, Any], int]] = []
    out = runner(tmp_path, "ok").run(
        d, timeout_s=30, on_event=lambda e: seen.append((e, threading.get_ident()))
    )
    assert out.exit_code == 0 and not (out.timed_out or out.interrupted or out.oom_killed)
    events = [e for e, _ in seen]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["config", "load", "warmup", "measure", "write"]
    assert [e["event"] for e in events][-1] == "done"
    assert {tid for _, tid in seen} == {threading.get_ident()}  # handed over on our thread
    log = (d / "container.log").read_text()
    assert "plain log line from the fake harness" in log and "a line on stderr" in log
    assert log.count('"event": "phase"') == 5
    res = ExperimentResult.model_validate_json((d / "result.json").read_text())
    assert res.energy.total_j is None and res.energy.unavailable_reason


@pytest.mark.parametrize(("mode", "code"), [("crash", 3), ("error", 1), ("malformed", 0)])
def test_exit_codes(tmp_path: Path, mode: str, code: int) -> None:
    out = runner(tmp_path, mode).run(run_dir(tmp_path), timeout_s=30, on_event=lambda e: None)
    assert out.exit_code == code and not out.timed_out


def test_environment(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    r = runner(tmp_path, "env", model_cache_dir="~/hf-cache")
    assert r.run(run_dir(tmp_path), timeout_s=30, on_event=events.append).exit_code == 0
    env = next(e for e in events if e["event"] == "env")
    assert env["HF_HOME"] == str(Path("~/hf-cache").expanduser())
    assert env["unbuffered"] == "1"


@pytest.mark.parametrize("mode", ["hang", "stubborn"])
def test_timeout_kills_the_whole_process_group(tmp_path: Path, mode: str) -> None:
    d = run_dir(tmp_path)
    phases: list[str] = []
    t0 = time.monotonic()
    out = runner(tmp_path, mode, grace_s=0.5).run(
        d, timeout_s=1.0, on_event=lambda e: phases.append(e.get("phase", ""))
    )
    elapsed = time.monotonic() - t0
    assert out.timed_out and not out.interrupted
    assert "measure" in phases
    assert 1.0 <= elapsed < 4.0
    # hang dies of SIGTERM; stubborn ignores it and needs the SIGKILL after the grace period
    assert out.exit_code == (128 + signal.SIGTERM if mode == "hang" else 128 + signal.SIGKILL)
    if mode == "stubborn":
        assert elapsed >= 1.5
    assert gone(int((d / "grandchild.pid").read_text()))


def test_gone_sees_a_live_process() -> None:
    import subprocess

    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert not gone(proc.pid, within_s=0.2)
    finally:
        proc.kill()
        proc.wait()


def test_no_process_outlives_a_normal_exit(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    t0 = time.monotonic()
    out = runner(tmp_path, "orphan").run(d, timeout_s=30, on_event=lambda e: None)
    assert out.exit_code == 0 and time.monotonic() - t0 < 10
    assert gone(int((d / "grandchild.pid").read_text()))


def test_keyboard_interrupt_kills_the_group(tmp_path: Path) -> None:
    d = run_dir(tmp_path)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("phase") == "measure":  # Ctrl+C arrives at the orchestrator only
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    t0 = time.monotonic()
    out = runner(tmp_path, "hang").run(d, timeout_s=60, on_event=on_event)
    assert out.interrupted and not out.timed_out
    assert time.monotonic() - t0 < 10
    assert gone(int((d / "grandchild.pid").read_text()))


def test_a_missing_command_is_reported_not_raised(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    out = LocalRunner(command=[str(tmp_path / "no-such-harness")]).run(
        d, timeout_s=5, on_event=lambda e: None
    )
    assert out.exit_code is None and out.detail and "could not start" in out.detail
    assert "could not start" in (d / "container.log").read_text()


def test_make_runner(tmp_path: Path) -> None:
    settings = Settings.load({"XDG_CONFIG_HOME": str(tmp_path)})
    local = make_runner(RunnerSpec("local", None, "--runner"), settings)
    assert local.kind == "local" and local.info().model_dump() == {
        "type": "local",
        "image": None,
        "image_digest": None,
    }
    assert isinstance(local, LocalRunner) and local.command == list(DEFAULT_COMMAND)
    assert local.command[:3] == [sys.executable, "-m", "llem_harness.cli"]
    with pytest.raises(LlemError, match=r"img.sif` does not exist.*make sif"):
        make_runner(RunnerSpec("apptainer", "img.sif", "default"), settings)


def test_the_real_harness_command_starts(tmp_path: Path) -> None:
    """The default command reaches llem_harness.cli; with no experiment.json it writes
    error.json (phase config) and exits 2, all in well under a second of model-free work."""
    d = run_dir(tmp_path)
    events: list[dict[str, Any]] = []
    out = LocalRunner().run(d, timeout_s=60, on_event=events.append)
    assert out.exit_code == 2
    assert json.loads((d / "error.json").read_text())["phase"] == "config"
    assert [e["event"] for e in events] == ["phase", "error"]
