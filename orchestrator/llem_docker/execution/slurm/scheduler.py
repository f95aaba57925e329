"""What SLURM says about a study's array tasks: `squeue` always, `sacct` where accounting is on.

Each query returns None when the tool cannot answer (not installed, controller down), so
callers keep what they knew instead of declaring runs lost.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

QUERY_TIMEOUT_S = 60.0
# squeue states of a task that has not started (the rest are running or ending).
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED", "RESV_DEL_HOLD"})


@dataclass(frozen=True)
class TaskState:
    job: str  # <array job id>_<task id>
    state: str  # SLURM's word: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    detail: str = ""  # squeue's reason, or sacct's exit code


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def parse_squeue(text: str) -> dict[str, TaskState]:
    """Lines of `squeue -h -r -o '%i|%T|%r'`: one per array task, e.g. `12_3|PENDING|None`."""
    out: dict[str, TaskState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            reason = parts[2] if len(parts) > 2 and parts[2] != "None" else ""
            out[parts[0]] = TaskState(parts[0], parts[1], reason)
    return out


def squeue(job_name: str) -> dict[str, TaskState] | None:
    """The study's tasks still known to the controller (pending or running), by job."""
    proc = _run(["squeue", "-h", "-r", "--name", job_name, "-o", "%i|%T|%r"])
    if proc is None or proc.returncode != 0:
        return None
    return parse_squeue(proc.stdout)


def parse_sacct(text: str) -> dict[str, TaskState]:
    """Lines of `sacct -n -P -X -o JobID,State,ExitCode`, e.g. `12_3|CANCELLED by 0|0:15`."""
    out: dict[str, TaskState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and "_" in parts[0] and "[" not in parts[0]:
            state = parts[1].split()[0] if parts[1] else "UNKNOWN"
            out[parts[0]] = TaskState(parts[0], state, parts[2] if len(parts) > 2 else "")
    return out


def sacct(job_ids: Sequence[str]) -> dict[str, TaskState] | None:
    """Final task states from accounting; None where accounting is off (`sacct` errors with
    'Slurm accounting storage is disabled') or not installed."""
    if not job_ids:
        return {}
    proc = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode"])
    if proc is None or proc.returncode != 0:
        return None
    return parse_sacct(proc.stdout)


def sbatch(script: str, cwd: str) -> str:
    """Submit; the job id. Raises RuntimeError with sbatch's own message."""
    if shutil.which("sbatch") is None:
        raise RuntimeError("`sbatch` is not on PATH (is this a SLURM login node?)")
    proc = subprocess.run(
        ["sbatch", "--parsable", script],
        capture_output=True,
        text=True,
        timeout=QUERY_TIMEOUT_S,
        check=False,
        cwd=cwd,
    )
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}")
    job = proc.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise RuntimeError(f"sbatch answered `{proc.stdout.strip()}`, not a job id")
    return job
