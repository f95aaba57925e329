"""`llem-docker status`: fold the array tasks' own records and SLURM's view into manifest.json.

Per run: while squeue lists its task, `queued` or `running` (a requeued task too); else the
task's final slurm-task.json (which also corrects a run declared lost before a slow shared
filesystem showed the file); else a task gone without a final record is `failed` as
`SlurmLost`, with sacct's state where accounting is on. When squeue cannot answer, nothing is
declared lost. Completed runs are final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llem_docker.execution.slurm import scheduler
from llem_docker.execution.slurm.script import job_name
from llem_docker.execution.slurm.task import read_task
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest, RunEntry, RunError, locked

FINAL = frozenset({"completed", "failed", "interrupted"})
ACTIVE = frozenset({"queued", "running"})


@dataclass
class Refresh:
    manifest: Manifest
    active: int
    notes: list[str] = field(default_factory=list)


def _from_task(entry: RunEntry, task: dict[str, object]) -> None:
    entry.state = task["state"]  # type: ignore[assignment]
    entry.started_at = task.get("started_at")  # type: ignore[assignment]
    entry.ended_at = task.get("ended_at")  # type: ignore[assignment]
    entry.exit_code = task.get("exit_code")  # type: ignore[assignment]
    err = task.get("error")
    entry.error = RunError.model_validate(err) if err else None


def _lost(entry: RunEntry, started: bool, final: scheduler.TaskState | None, out: str) -> None:
    how = (
        "started but ended without recording an outcome (node failure, out of memory, or "
        "killed before it could write)"
        if started
        else "ended without writing any record: it never started, or failed before its "
        "first write (a `setup` line of the script, a missing run folder)"
    )
    said = f"; sacct: {final.state} {final.detail}".rstrip() if final else ""
    entry.state = "failed"
    entry.error = RunError(
        type="SlurmLost", message=f"the array task {entry.job} {how}{said}; see {out}"
    )


def refresh(study_dir: Path) -> Refresh:
    """Re-read everything and rewrite the manifest (a SLURM study; others are returned as
    they are)."""
    with locked(study_dir):
        return refresh_locked(study_dir)


def refresh_locked(study_dir: Path) -> Refresh:
    """refresh(), for a caller that holds the manifest lock."""
    manifest = Manifest.read(study_dir)
    if manifest.executor != "slurm" or not manifest.submissions:
        return Refresh(manifest, 0)
    notes: list[str] = []
    queue = scheduler.squeue(job_name(manifest.study_id))
    if queue is None:
        notes.append("squeue did not answer: queued and running states are as last seen")
    jobs = [s.job_id for s in manifest.submissions if s.job_id]
    accounting = scheduler.sacct(jobs)
    for entry in manifest.runs:
        if entry.job is None or entry.state in ("completed", "skipped"):
            continue
        task = read_task(StudyDir(study_dir).run(entry.run_id).path)
        if task is not None and task.get("job") != entry.job:
            task = None  # from an earlier submission
        seen = None if queue is None else queue.get(entry.job)
        if seen is not None:  # SLURM still has it (pending, running, or requeued)
            entry.state = "queued" if seen.state in scheduler.PENDING_STATES else "running"
            entry.error, entry.ended_at, entry.exit_code = None, None, None
            entry.started_at = task.get("started_at") if task is not None else None
            continue
        if task is not None and task.get("state") in FINAL:
            _from_task(entry, task)  # also corrects a run declared lost too early
            continue
        if queue is None or entry.state in FINAL:
            continue
        if task is None and entry.state == "queued" and _still_starting(entry, accounting):
            continue
        array_job, _, index = entry.job.partition("_")
        sub = next(s for s in manifest.submissions if s.job_id == array_job)
        out = f"slurm/{Path(sub.script).stem}-{array_job}_{index}.out"
        _lost(entry, task is not None, (accounting or {}).get(entry.job), out)
        if accounting is None and not any("sacct" in n for n in notes):
            notes.append(
                "sacct did not answer (accounting is off here), so lost tasks carry "
                "no SLURM state; their .out files in slurm/ tell more"
            )
    active = sum(e.state in ACTIVE for e in manifest.runs)
    if active:
        manifest.state = "running"
    elif manifest.state == "running":
        states = {e.state for e in manifest.runs}
        manifest.state = "completed" if states == {"completed"} else "failed"
    manifest.write(study_dir)
    return Refresh(manifest, active, notes)


def _still_starting(entry: RunEntry, accounting: dict[str, scheduler.TaskState] | None) -> bool:
    """A task between squeue and its first write: sacct says it runs."""
    seen = (accounting or {}).get(entry.job or "")
    return seen is not None and seen.state in ("RUNNING", "PENDING")
