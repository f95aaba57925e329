"""One SLURM array task: `python -m llem_docker.execution.slurm.task STUDY_DIR RUNS_FILE`.

Line $SLURM_ARRAY_TASK_ID of RUNS_FILE names the run. The task waits the study's thermal gap
(holding its allocation, so its GPU idles), runs the harness through the runner the manifest
recorded for the backend, classifies the outcome exactly as the study loop does, and writes
runs/<run>/slurm-task.json atomically: once `running`, once final. It never writes the
manifest (tasks may run at once); `llem-docker status` folds the task files into it.
scancel or the time limit (SIGTERM) stops the runner cleanly and is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import LlemError
from llem_docker.execution.execute import execute_run
from llem_docker.execution.runners import make_runner
from llem_docker.store.layout import RunDir, StudyDir
from llem_docker.store.manifest import Manifest, RunError, Submission, utc_now
from llem_docker.study.plan import gap_before, gap_kind
from llem_harness.host_api import atomic_write_json


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _say_phase(event: dict[str, Any]) -> None:
    if event.get("event") == "phase":
        _say(f"phase {event.get('phase')}")


def _write(run_dir: Path, **fields: Any) -> None:
    atomic_write_json(RunDir(run_dir).slurm_task, fields)


def _say(text: str) -> None:
    print(f"[{utc_now()}] {text}", flush=True)


def submission_of(manifest: Manifest, runs_file: Path) -> Submission:
    for sub in manifest.submissions:
        if sub.runs_file == runs_file.name:
            return sub
    raise LlemError(
        f"{runs_file} belongs to no submission in the manifest (was the folder resubmitted "
        "or edited?). Fix: check `llem-docker status` and resubmit with --resume"
    )


def run_task(study_dir: Path, runs_file: Path, index: int) -> int:
    # Which run: a failure here cannot be recorded in a task file; it goes to the .out file.
    manifest = Manifest.read(study_dir)
    sub = submission_of(manifest, runs_file)
    run_id = runs_file.read_text(encoding="utf-8").split()[index]
    run_ids = sub.run_ids
    entry = manifest.entry(run_id)
    run_dir = StudyDir(study_dir).run(run_id).path
    run_dir.mkdir(parents=True, exist_ok=True)
    job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', sub.job_id)}_{index}"
    base = {"run_id": run_id, "job": job, "host": socket.gethostname()}
    started = utc_now()
    _write(run_dir, **base, state="running", started_at=started)
    error: RunError | None = None
    state, exit_code = "failed", None
    try:
        choice = manifest.runners[entry.backend]
        spec = RunnerSpec(choice.kind, choice.target, choice.source, None, entry.backend)  # type: ignore[arg-type]
        # The runner first: a missing image or binary fails at once, not after the gap.
        runner = make_runner(spec, Settings.load(gpus=sub.gpus))
        prev = manifest.entry(run_ids[index - 1]) if index > 0 else None
        order = manifest.execution.cycle_order
        gap = gap_before(prev, entry, order, sub.config_gap_s, sub.cycle_gap_s)
        if gap > 0:
            _say(f"{gap_kind(prev, entry, order)} gap: {gap:g} s")
            time.sleep(gap)
        _say(f"run {run_id} through {spec.label} (timeout {sub.timeout_s:g} s)")
        done = execute_run(
            runner,
            run_id,
            run_dir,
            timeout_s=sub.timeout_s,
            on_event=_say_phase,
            before_classify=_ignore_sigterm,  # from here on: classify and record
        )
        got, exit_code = done.got, done.outcome.exit_code
        state, error = got.state, got.error
        if got.state == "interrupted":
            error = RunError(
                type="SlurmCancelled",
                message="stopped by SLURM (scancel, or the job's time limit); the harness "
                "process was killed",
                phase=got.error.phase if got.error else None,
            )
    except KeyboardInterrupt:
        state = "interrupted"
        error = RunError(type="SlurmCancelled", message="stopped by SLURM before the run started")
    except LlemError as exc:
        error = RunError(type=type(exc).__name__, message=exc.render())
    except Exception as exc:  # recorded, not lost: the task file is the only witness
        error = RunError(type=type(exc).__name__, message=str(exc) or repr(exc))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _write(
        run_dir,
        **base,
        state=state,
        started_at=started,
        ended_at=utc_now(),
        exit_code=exit_code,
        error=None if error is None else error.model_dump(mode="json"),
    )
    _say(f"run {run_id}: {state}" + (f" ({error.type}: {error.message})" if error else ""))
    return 0 if state == "completed" else 1


def read_task(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(RunDir(run_dir).slurm_task.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or "SLURM_ARRAY_TASK_ID" not in os.environ:
        print(
            "usage: SLURM_ARRAY_TASK_ID=N python -m llem_docker.execution.slurm.task "
            "STUDY_DIR RUNS_FILE"
        )
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    return run_task(Path(args[0]), Path(args[1]), int(os.environ["SLURM_ARRAY_TASK_ID"]))


if __name__ == "__main__":
    sys.exit(main())
