"""The chaos library's own parts that need no Docker (tests/docker/chaos_faults.py and
chaos.py): the seeded plan, each strike's wiring (a stand-in `docker` on PATH records what it
was asked, on which engine), the tmpfs that fills up, and what a record expects of the
manifest. The Docker test (tests/docker/test_chaos.py) runs them for real."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.chaos import Attempt, ChaosRecord
from tests.docker.chaos_faults import (
    KINDS,
    ChaosError,
    Disk,
    Fault,
    FaultPlan,
    Rig,
    Strike,
    container,
    docker_containers,
    docker_is_up,
    strike,
)

HOST = "unix:///tmp/chaos-test-engine.sock"
FAKE_DOCKER = """#!/bin/sh
echo "$DOCKER_HOST $*" >> "$CHAOS_DOCKER_LOG"
case "$1" in
  inspect) echo running ;;
  ps) printf 'llem-a-1\\nllem-a-2\\n' ;;
esac
"""


def test_the_plan_is_seeded() -> None:
    plan = FaultPlan.draw(34)
    assert plan == FaultPlan.draw(34) and plan != FaultPlan.draw(35)
    assert sorted(f.kind for f in plan.faults) == sorted(KINDS)
    three = FaultPlan.draw(7, per_kind=3, kinds=["sigterm", "disk_full"])
    assert sorted(f.kind for f in three.faults) == ["disk_full"] * 3 + ["sigterm"] * 3
    for f in three.faults:
        assert 0 <= f.at < 1 and 0.5 <= f.delay_s <= 2.5 and 3.0 <= f.hold_s <= 8.0


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(FAKE_DOCKER)
    exe.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("CHAOS_DOCKER_LOG", str(log))
    return log


@pytest.fixture
def victim() -> Any:
    """Stands in for the llem-docker process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _rig(tmp_path: Path, **kw: Any) -> Rig:
    env = {"DOCKER_HOST": HOST}
    return Rig(tmp_path / "s.yaml", env, tmp_path / "results", tmp_path / "logs", 2, **kw)


def _hit(rig: Rig, proc: Any, kind: str, study_dir: Path) -> Strike:
    fault = Fault(kind, 0.5, 0.1, 0.2)  # type: ignore[arg-type]
    return strike(rig, proc, fault, study_dir, "001_c1_pytorch_ab", 0, time.monotonic())


def test_docker_faults_act_on_the_runs_container_on_the_rigs_engine(
    tmp_path: Path, fake_docker: Path, victim: Any
) -> None:
    study_dir = tmp_path / "results" / "chaos_20261207T000000Z"
    name = container(study_dir.name, "001_c1_pytorch_ab")
    assert name == "llem-chaos_20261207T000000Z-001_c1_pytorch_ab"
    for kind, verb in (("docker_kill", "kill"), ("docker_stop", "stop")):
        s = _hit(_rig(tmp_path), victim, kind, study_dir)
        assert s.kind == kind and s.run_id == "001_c1_pytorch_ab"
        assert s.detail.startswith(f"docker {verb} {name}: exit 0")
    assert docker_is_up(HOST)(study_dir.name, "001_c1_pytorch_ab")
    assert docker_containers(HOST)("a") == ["llem-a-1", "llem-a-2"]
    assert fake_docker.read_text().splitlines() == [
        f"{HOST} kill {name}",
        f"{HOST} stop {name}",
        f"{HOST} inspect --format {{{{.State.Status}}}} {name}",
        f"{HOST} ps -a --filter label=llem.study=a --format {{{{.Names}}}}",
    ]
    assert victim.poll() is None  # the CLI itself is left alone


@pytest.mark.parametrize(
    ("kind", "sig"), [("sigterm", signal.SIGTERM), ("sigkill", signal.SIGKILL)]
)
def test_signals_go_to_the_cli(tmp_path: Path, victim: Any, kind: str, sig: int) -> None:
    s = _hit(_rig(tmp_path), victim, kind, tmp_path)
    assert victim.wait(10) == -sig and str(victim.pid) in s.detail


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def terminate(self) -> None:
        self.calls.append("terminate")

    def wait_stopped(self, timeout_s: float = 60.0) -> None:
        self.calls.append("wait_stopped")

    def start(self) -> None:
        self.calls.append("start")


def test_dockerd_restart_stops_then_starts_the_rigs_engine(tmp_path: Path, victim: Any) -> None:
    with pytest.raises(ChaosError, match="needs the rig's engine"):
        _hit(_rig(tmp_path), victim, "dockerd_restart", tmp_path)
    engine = FakeEngine()
    _hit(_rig(tmp_path, engine=engine), victim, "dockerd_restart", tmp_path)
    assert engine.calls == ["terminate", "wait_stopped", "start"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_the_disk_fills_up_and_is_freed(tmp_path: Path, victim: Any) -> None:
    disk = Disk(tmp_path / "results", size="4m")
    disk.mount()
    try:
        assert disk.fill() > 3_900_000
        with pytest.raises(OSError) as full:
            (disk.path / "more").write_bytes(b"\0" * 8192)
        assert full.value.errno == errno.ENOSPC
        disk.free()
        (disk.path / "more").write_bytes(b"\0" * 8192)
        s = _hit(_rig(tmp_path, disk=disk), victim, "disk_full", tmp_path)
        assert "bytes of filler for" in s.detail and not disk.filler.exists()
    finally:
        disk.unmount()
    assert not os.path.ismount(disk.path)


def test_a_record_expects_one_attempt_per_unfinished_run() -> None:
    hit = Strike("sigterm", "r1", 0, 0.1, 1.0, "t", effect=True, cause="Interrupted")
    record = ChaosRecord(FaultPlan(1, ()))
    record.attempts = [
        Attempt(1, [], exit_code=130, strike=hit, unfinished=["r1"]),
        Attempt(2, [], exit_code=1, unfinished=["r1", "r2"], traceback=True),
        Attempt(3, [], exit_code=0),
    ]
    assert record.expected_attempts() == {"r1": [frozenset({"Interrupted"}), None], "r2": [None]}
    assert record.problems() == [
        "attempt 2 (no fault) printed a Python traceback",
        "attempt 2 had no fault, yet exit code 1",
    ]
    hit.kind = "docker_kill"  # SIGTERM's 130 is not a killed container's 1
    record.missed = [Fault("disk_full", 0.1, 0.1, 1.0)]
    record.attempts[-1].exit_code = 1
    said = record.problems()
    assert "fault disk_full never struck a running run" in said
    assert "attempt 1 (docker_kill): exit code 130, expected [1]" in said
    assert "the study never completed" in said


def test_the_causes_kept_are_read_from_the_final_manifest(tmp_path: Path) -> None:
    """A SIGKILL leaves its run `running`, with no error: the cause is what --resume kept."""
    record = ChaosRecord(FaultPlan(1, ()), study_dir=tmp_path)
    term = Strike("sigterm", "r1", 0, 0.1, 1.0, "t", effect=True, cause="Interrupted")
    kill = Strike("sigkill", "r1", 0, 0.1, 1.0, "t", effect=True, cause=None)
    record.attempts = [
        Attempt(1, [], exit_code=130, strike=term, unfinished=["r1"]),
        Attempt(2, [], exit_code=-9, strike=kill, unfinished=["r2", "r1"]),
        Attempt(3, [], exit_code=0),
    ]
    kept = [{"error": {"type": "Interrupted"}}, {"error": {"type": "OrchestratorLost"}}]
    runs = [{"run_id": "r1", "attempts": kept}, {"run_id": "r2", "attempts": [{"error": None}]}]
    (tmp_path / "manifest.json").write_text(json.dumps({"runs": runs}))
    assert record.kept_causes() == [("sigterm", "Interrupted"), ("sigkill", "OrchestratorLost")]
