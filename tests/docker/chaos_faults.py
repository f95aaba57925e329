"""The faults of the chaos runs (tests/docker/chaos.py): a seeded plan of them, what they act
on (the rig: the CLI's environment, the engine, the results folder's tmpfs), and each strike.

    docker_kill      `docker kill` of the run's container: the run fails, the study goes on
    docker_stop      `docker stop` (SIGTERM, then SIGKILL): the same
    dockerd_restart  the engine is stopped (SIGTERM) and started again: a private dockerd
                     (second_engine.py), never the shared one
    sigterm          SIGTERM of the `llem-docker` process (it handles it as Ctrl+C)
    sigkill          SIGKILL of the `llem-docker` process: its container lives on, an orphan
                     that the next start reaps
    disk_full        the results folder's filesystem (a small tmpfs) filled with a filler file
                     for `hold_s` at least and until the struck run or the CLI ended, then
                     emptied, as a user frees space before resuming

Everything random comes from one `random.Random(seed)`.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

FaultKind = Literal[
    "docker_kill", "docker_stop", "dockerd_restart", "sigterm", "sigkill", "disk_full"
]  # fmt: skip
KINDS: tuple[FaultKind, ...] = (
    "docker_kill", "docker_stop", "dockerd_restart", "sigterm", "sigkill", "disk_full",
)  # fmt: skip
# How the CLI must end after each fault: 1 (a run failed, or the study aborted), 130 (SIGTERM
# is handled as Ctrl+C), -9 (killed).
EXPECTED_EXIT: dict[FaultKind, frozenset[int]] = {
    "docker_kill": frozenset({1}),
    "docker_stop": frozenset({1}),
    "dockerd_restart": frozenset({1}),
    "sigterm": frozenset({130}),
    "sigkill": frozenset({-signal.SIGKILL}),
    "disk_full": frozenset({1}),
}
# The cause the struck run's attempt must carry in the manifest (None: any cause will do:
# the orchestrator has no type for a full disk yet; the bench reports what it gave).
EXPECTED_CAUSE: dict[FaultKind, frozenset[str] | None] = {
    "docker_kill": frozenset({"KilledExternally"}),
    "docker_stop": frozenset({"KilledExternally"}),
    "dockerd_restart": frozenset({"EngineUnavailable", "KilledExternally"}),
    "sigterm": frozenset({"Interrupted"}),
    "sigkill": frozenset({"OrchestratorLost"}),
    "disk_full": None,
}
POLL_S = 0.1


class ChaosError(RuntimeError):
    """The chaos run itself could not go on (an attempt hung, the study never completed);
    `record` holds what happened until then (a chaos.ChaosRecord), for the report."""

    record: Any = None


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    at: float  # where in the attempt's remaining runs it strikes, 0 <= at < 1
    delay_s: float  # after the target run's container is up
    hold_s: float  # disk_full: how long the disk stays full at least


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    faults: tuple[Fault, ...]

    @classmethod
    def draw(
        cls,
        seed: int,
        kinds: Collection[FaultKind] = KINDS,
        per_kind: int = 1,
        delay_s: tuple[float, float] = (0.5, 2.5),
        hold_s: tuple[float, float] = (3.0, 8.0),
    ) -> FaultPlan:
        """`per_kind` faults of each kind in a seeded order, each at a seeded moment. The
        delays stay short of a trivial run's length (about 6 s in its container, mostly
        imports), so that a fault lands before the run's result; and past its first half
        second, before which the harness has not yet installed its SIGTERM handler (a
        `docker stop` then ends it with exit 143 and no error.json, which the runner reads as
        KilledExternally too: test_docker_engine_faults.py stops a run in that moment)."""
        rng = random.Random(seed)
        order = [k for k in KINDS if k in kinds] * per_kind
        rng.shuffle(order)
        faults = tuple(
            Fault(k, rng.random(), round(rng.uniform(*delay_s), 3), round(rng.uniform(*hold_s), 3))
            for k in order
        )
        return cls(seed, faults)


class Restartable(Protocol):
    """The engine the study runs on, for dockerd_restart (tests/docker/second_engine.py)."""

    def terminate(self) -> None: ...
    def wait_stopped(self, timeout_s: float = ...) -> None: ...
    def start(self) -> None: ...


@dataclass
class Disk:
    """A small tmpfs at `path` (the results folder), for disk_full; root only."""

    path: Path
    size: str = "64m"
    filler_name: str = ".chaos-filler"

    @property
    def filler(self) -> Path:
        return self.path / self.filler_name

    def mount(self) -> None:
        if os.geteuid() != 0:
            raise ChaosError(
                "the disk_full fault puts the results folder on a tmpfs (`mount -t tmpfs`), "
                "which needs root; run as root (as CI does), or leave disk_full out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        opts = f"size={self.size},mode=0755"
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "llem-chaos", str(self.path)],
                       check=True, capture_output=True, timeout=30)  # fmt: skip

    def unmount(self) -> None:
        """Unmount (lazily if something still has it open: the check reports that)."""
        self.free()
        done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)

    def fill(self) -> int:
        """Write the filler until the filesystem refuses another byte; its size."""
        written = 0
        with self.filler.open("wb", buffering=0) as fh:  # unbuffered: nothing left to flush
            for chunk in (1 << 20, 4096):
                block = b"\0" * chunk
                try:
                    while True:
                        written += fh.write(block) or 0
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@dataclass
class Rig:
    """Where and how the study runs: its file, the CLI's environment (LLEM_CONFIG, and
    DOCKER_HOST for a private engine), the results folder, and what the faults act on."""

    study_file: Path
    env: dict[str, str]
    results_dir: Path
    log_dir: Path  # the CLI's output of each attempt (never on the tmpfs that fills up)
    planned: int  # the study's run count
    engine: Restartable | None = None  # for dockerd_restart
    disk: Disk | None = None  # for disk_full
    is_up: Callable[[str, str], bool] | None = None  # (study id, run id): container running
    per_run_s: float = 60.0  # an attempt may take this per run left, plus a minute

    @property
    def docker_host(self) -> str | None:
        return self.env.get("DOCKER_HOST")


@dataclass
class Strike:
    kind: FaultKind
    run_id: str
    position: int  # the run's place among those this attempt started, from 0
    delay_s: float
    at_s: float  # since the attempt started
    at: str  # wall clock, UTC
    detail: str = ""
    effect: bool = False  # the struck run did not complete in this attempt
    cause: str | None = None  # its error type after the attempt (a SIGKILL leaves none)


def running_runs(study_dir: Path, owner: int) -> list[str]:
    """The runs the manifest says are running, once the attempt's own CLI (`owner`) has
    written it: until then it may be a killed one's, with a run left `running`."""
    try:
        data = json.loads((study_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return []
    if data.get("owner_pid") != owner:
        return []
    return [r["run_id"] for r in data.get("runs", []) if r.get("state") == "running"]


def strike(
    rig: Rig,
    proc: subprocess.Popen[bytes],
    fault: Fault,
    study_dir: Path,
    run_id: str,
    position: int,
    t0: float,
) -> Strike:
    """Strike `run_id` (running in `study_dir` under the CLI `proc`) with `fault`, now."""
    s = Strike(fault.kind, run_id, position, fault.delay_s, round(time.monotonic() - t0, 3),
               datetime.now(UTC).isoformat(timespec="milliseconds"))  # fmt: skip
    name = container(study_dir.name, run_id)
    if fault.kind in ("docker_kill", "docker_stop"):
        verb = fault.kind.removeprefix("docker_")
        done = subprocess.run(["docker", verb, name], env=_docker_env(rig.docker_host),
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        s.detail = f"docker {verb} {name}: exit {done.returncode} {done.stderr.strip()[:200]}"
    elif fault.kind == "dockerd_restart":
        if rig.engine is None:
            raise ChaosError("dockerd_restart needs the rig's engine (a private dockerd)")
        rig.engine.terminate()
        rig.engine.wait_stopped()
        rig.engine.start()
        s.detail = "dockerd stopped (SIGTERM) and started again"
    elif fault.kind in ("sigterm", "sigkill"):
        proc.send_signal(signal.SIGTERM if fault.kind == "sigterm" else signal.SIGKILL)
        s.detail = f"{fault.kind.upper()} to llem-docker pid {proc.pid}"
    else:
        s.detail = _disk_full(rig, proc, fault, study_dir, run_id)
    return s


def _disk_full(
    rig: Rig, proc: subprocess.Popen[bytes], fault: Fault, study_dir: Path, run_id: str
) -> str:
    """Fill the disk; keep it full `hold_s` at least, and on until the struck run or the CLI
    ended (at most two minutes); then free it, as a user would before resuming."""
    if rig.disk is None:
        raise ChaosError("disk_full needs the rig's disk (the results folder on a tmpfs)")
    written = rig.disk.fill()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        if time.monotonic() - t0 >= fault.hold_s and run_id not in running_runs(
            study_dir, proc.pid
        ):
            break
        time.sleep(POLL_S)
    held = time.monotonic() - t0
    rig.disk.free()
    cli = "ended" if proc.poll() is not None else "still running"
    return f"{written:,} bytes of filler for {held:.1f} s; the CLI was {cli} when it went"


def container(study_id: str, run_id: str) -> str:
    from llem_docker.execution.runners.docker_engine import container_name

    return container_name(study_id, run_id)


def docker_is_up(host: str | None) -> Callable[[str, str], bool]:
    """(study id, run id) -> is the run's container running, on the engine at `host`."""

    def up(study_id: str, run_id: str) -> bool:
        return _state(host, container(study_id, run_id)) == "running"

    return up


def docker_containers(host: str | None) -> Callable[[str], list[str]]:
    """study id -> the names of the study's containers the engine still knows, any state."""

    def left(study_id: str) -> list[str]:
        done = subprocess.run(
            ["docker", "ps", "-a", "--filter", f"label=llem.study={study_id}",
             "--format", "{{.Names}}"],
            env=_docker_env(host), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return [f"(`docker ps` failed: {done.stderr.strip()[:200]})"]
        return done.stdout.split()

    return left


def _state(host: str | None, name: str) -> str | None:
    done = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Status}}", name],
        env=_docker_env(host), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else None


def _docker_env(host: str | None) -> dict[str, str]:
    return {**os.environ, **({"DOCKER_HOST": host} if host else {})}
