"""Chaos through the real CLI (issue 34, item 1): a study runs while a seeded plan of faults
(chaos_faults.py) strikes, one fault per attempt, and is resumed as a user would
(`llem-docker run STUDY --resume DIR`) until it completes. Shared by tests/docker/test_chaos.py
(bounded, for CI) and bench/chaos.py (longer); check_study (chaos_check.py) judges the folder.

Each fault is aimed at a run while its container is up: the `position`-th run the attempt
starts (the fault's `at`, a fraction of the runs the attempt has left), `delay_s` after its
container is seen running. A run that ends first passes the fault on to the next one; a fault
that strikes without effect (the run completed anyway) is tried again in the next attempt.
Every strike is recorded (kind, run, position, delay, when, the CLI's exit code, the cause the
manifest gave), and so is each attempt's set of runs left unfinished: the earlier attempts
`--resume` must keep, which the check holds the manifest to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.docker.chaos_check import Causes, check_study, compare_shape
from tests.docker.chaos_faults import (
    EXPECTED_CAUSE,
    EXPECTED_EXIT,
    KINDS,
    POLL_S,
    ChaosError,
    Disk,
    Fault,
    FaultPlan,
    Rig,
    Strike,
    docker_containers,
    docker_is_up,
    running_runs,
    strike,
)

__all__ = [
    "KINDS",
    "ChaosError",
    "ChaosRecord",
    "Disk",
    "FaultPlan",
    "Rig",
    "check_study",
    "compare_shape",
    "docker_containers",
    "docker_is_up",
    "run_until_complete",
]

EXE = str(Path(sys.executable).with_name("llem-docker"))


@dataclass
class Attempt:
    number: int
    argv: list[str]
    exit_code: int | None = None
    wall_s: float = 0.0
    strike: Strike | None = None
    unfinished: list[str] = field(default_factory=list)  # runs started, not completed
    traceback: bool = False
    stderr_tail: str = ""


@dataclass
class ChaosRecord:
    plan: FaultPlan
    study_dir: Path | None = None
    attempts: list[Attempt] = field(default_factory=list)
    missed: list[Fault] = field(default_factory=list)  # never struck with effect
    wall_s: float = 0.0

    def expected_attempts(self) -> dict[str, Causes]:
        """For each run, the earlier attempts --resume must have kept, in order, and the
        causes each may carry: one per attempt that started it and did not complete it."""
        out: dict[str, list[frozenset[str] | None]] = {}
        for a in self.attempts:
            for run_id in a.unfinished:
                struck = a.strike is not None and a.strike.run_id == run_id
                cause = EXPECTED_CAUSE[a.strike.kind] if struck and a.strike else None
                out.setdefault(run_id, []).append(cause)
        return dict(out)

    def kept_causes(self) -> list[tuple[str, str | None]]:
        """(kind, the cause the final manifest kept in the struck run's `attempts`) for each
        strike with effect, matched as expected_attempts() matches them."""
        if self.study_dir is None:
            return []
        runs = {r["run_id"]: r for r in _runs(self.study_dir)}
        seen: dict[str, int] = {}
        out: list[tuple[str, str | None]] = []
        for a in self.attempts:
            for run_id in a.unfinished:
                n = seen[run_id] = seen.get(run_id, 0) + 1
                if a.strike is None or a.strike.run_id != run_id:
                    continue
                kept = runs.get(run_id, {}).get("attempts", [])
                error = kept[n - 1].get("error") if len(kept) >= n else None
                out.append((a.strike.kind, (error or {}).get("type")))
        return out

    def problems(self) -> list[str]:
        """What went wrong with the CLI itself: a fault that never struck, an exit code
        that is not the fault's, a traceback, a resume without a fault that failed."""
        problems = [f"fault {f.kind} never struck a running run" for f in self.missed]
        for a in self.attempts:
            s = a.strike
            if s is not None and s.effect and a.exit_code not in EXPECTED_EXIT[s.kind]:
                problems.append(
                    f"attempt {a.number} ({s.kind}): exit code {a.exit_code}, expected "
                    f"{sorted(EXPECTED_EXIT[s.kind])}"
                )
            if a.traceback:
                what = s.kind if s else "no fault"
                problems.append(f"attempt {a.number} ({what}) printed a Python traceback")
            if s is None and a.exit_code != 0:
                problems.append(f"attempt {a.number} had no fault, yet exit code {a.exit_code}")
        if not self.attempts or self.attempts[-1].exit_code != 0:
            problems.append("the study never completed")
        return problems

    def summary(self) -> dict[str, Any]:
        strikes = [a.strike for a in self.attempts if a.strike is not None]
        kinds: dict[str, int] = {}
        for s in strikes:
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        return {
            "seed": self.plan.seed,
            "study_dir": str(self.study_dir),
            "faults_by_kind": kinds,
            "resumes": max(len(self.attempts) - 1, 0),
            "wall_s": round(self.wall_s, 1),
            "missed": [asdict(f) for f in self.missed],
            "attempts": [_plain(asdict(a)) for a in self.attempts],
        }


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def run_until_complete(rig: Rig, plan: FaultPlan, *, max_resumes: int = 4) -> ChaosRecord:
    """Run the study, one planned fault per attempt, resuming after each until it completes
    (exit 0). Up to `max_resumes` resumes beyond the faults' own, else ChaosError."""
    record = ChaosRecord(plan)
    queue = list(plan.faults)
    t0 = time.monotonic()
    try:
        while not record.attempts or record.attempts[-1].exit_code != 0:
            if len(record.attempts) > len(plan.faults) + max_resumes:
                raise ChaosError(f"the study did not complete in {len(record.attempts)} attempts")
            fault = queue[0] if queue else None
            attempt = _attempt(rig, record, fault)
            record.attempts.append(attempt)
            if fault is not None and attempt.strike is not None and attempt.strike.effect:
                queue.pop(0)
        record.missed = queue
    except ChaosError as exc:
        exc.record = record
        raise
    finally:
        record.wall_s = time.monotonic() - t0
        if rig.disk is not None:
            rig.disk.free()
    return record


def _attempt(rig: Rig, record: ChaosRecord, fault: Fault | None) -> Attempt:
    """One `llem-docker run` (the first) or `run --resume`, and its fault."""
    argv = [EXE, "run", str(rig.study_file)]
    if record.study_dir is not None:
        argv += ["--resume", str(record.study_dir)]
    n = len(record.attempts) + 1
    attempt = Attempt(n, argv)
    left = rig.planned if record.study_dir is None else _left(record.study_dir)
    rig.log_dir.mkdir(parents=True, exist_ok=True)
    out, err = (rig.log_dir / f"attempt-{n}.{s}" for s in ("out", "err"))
    t0 = time.monotonic()
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(argv, env=rig.env, stdout=fo, stderr=fe, start_new_session=True)
        try:
            deadline = t0 + 60 + rig.per_run_s * left
            if fault is not None:
                attempt.strike = _strike_when_ready(rig, record, proc, fault, left, deadline)
            attempt.exit_code = _wait(proc, deadline - time.monotonic())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    attempt.wall_s = time.monotonic() - t0
    text = err.read_text(errors="replace")
    attempt.traceback, attempt.stderr_tail = "Traceback" in text, text[-3000:]
    record.study_dir = record.study_dir or _find_study(rig.results_dir)
    _after(record.study_dir, attempt)
    return attempt


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    try:
        return proc.wait(max(timeout_s, 1.0))
    except subprocess.TimeoutExpired:
        raise ChaosError(f"llem-docker did not end in time (hung?): {proc.args!r}") from None


def _left(study_dir: Path) -> int:
    return sum(r["state"] != "completed" for r in _runs(study_dir))


def _runs(study_dir: Path) -> list[dict[str, Any]]:
    try:
        runs: list[dict[str, Any]] = json.loads((study_dir / "manifest.json").read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return []  # not written yet; one that cannot be read is check_study's to report
    return runs


def _find_study(results_dir: Path) -> Path | None:
    """The study's folder, once the first attempt has written its manifest."""
    if not results_dir.is_dir():
        return None
    found = [p for p in results_dir.iterdir() if (p / "manifest.json").is_file()]
    if len(found) > 1:
        raise ChaosError(f"more than one study in {results_dir}: {found}")
    return found[0] if found else None


def _after(study_dir: Path | None, attempt: Attempt) -> None:
    """What the attempt left: the runs --resume will keep an attempt of, and the cause the
    struck run got."""
    if study_dir is None:
        return
    runs = {r["run_id"]: r for r in _runs(study_dir)}
    attempt.unfinished = [
        i for i, r in runs.items() if r.get("started_at") and r["state"] != "completed"
    ]
    s = attempt.strike
    if s is not None and s.run_id in runs:
        entry = runs[s.run_id]
        s.effect = entry["state"] != "completed"
        s.cause = (entry.get("error") or {}).get("type")


def _strike_when_ready(
    rig: Rig,
    record: ChaosRecord,
    proc: subprocess.Popen[bytes],
    fault: Fault,
    left: int,
    deadline: float,
) -> Strike | None:
    """Wait for the target run's container, then strike; None if the CLI ended first. A run
    that ends before it can be struck passes the fault on to the next one."""
    t0 = time.monotonic()
    position = min(int(fault.at * left), max(left - 1, 0))
    seen: list[str] = []
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise ChaosError(f"no run of {proc.args!r} came up to strike in time (hung?)")
        study_dir = record.study_dir or _find_study(rig.results_dir)
        running = running_runs(study_dir, proc.pid) if study_dir is not None else []
        seen += [r for r in running if r not in seen]
        if study_dir is not None and len(seen) > position:
            run_id = seen[position]
            if run_id not in running:
                position += 1
                continue
            if _up(rig, study_dir.name, run_id):
                time.sleep(fault.delay_s)
                if run_id in running_runs(study_dir, proc.pid) and proc.poll() is None:
                    return strike(rig, proc, fault, study_dir, run_id, position, t0)
        time.sleep(POLL_S)
    return None


def _up(rig: Rig, study_id: str, run_id: str) -> bool:
    return True if rig.is_up is None else rig.is_up(study_id, run_id)
