"""What a finished run produced, read from its run directory and the runner's outcome:
completed (a valid result.json for this run), interrupted, or failed with a type and message.

Precedence: result.json > interrupt > timeout > engine lost > OOM kill > killed from outside
> error.json > runner failure > crash (the log's last lines). Shared by the study loop and the
SLURM array task.

The engine going away comes before error.json: an engine that stops sends its containers
SIGTERM, and the harness's `Terminated` would hide the cause. A SIGTERM that llem-docker did
not send (no timeout, no Ctrl+C) is `KilledExternally`, as is a SIGKILL the runner saw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from llem_docker.execution.runners.base import ENGINE_LOST, KILLED_EXTERNALLY, RunOutcome
from llem_docker.store.manifest import RunError, RunState
from llem_harness.host_api import ERROR_FILE, LOG_FILE, RESULT_FILE, ErrorInfo, ExperimentResult

LOG_TAIL_LINES = 20
TERMINATED = "Terminated"  # the harness's error type for SIGTERM (llem_harness.termination)


@dataclass
class Classified:
    state: RunState
    result: ExperimentResult | None = None
    error: RunError | None = None


def _failed(kind: str, message: str, phase: str | None) -> Classified:
    return Classified("failed", error=RunError(type=kind, message=message, phase=phase))


def classify(
    run_id: str, run_dir: Path, outcome: RunOutcome, phase: str | None, timeout: float
) -> Classified:
    """result.json > interrupt > timeout > engine lost > OOM kill > killed from outside >
    error.json > runner failure > crash."""
    result_path = run_dir / RESULT_FILE
    if result_path.exists():
        try:
            res = ExperimentResult.model_validate_json(result_path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, OSError) as exc:
            lines = str(exc).splitlines()
            return _failed("MalformedResult", "; ".join(lines[:3]) or repr(exc), "write")
        if res.run.run_id != run_id:
            msg = f"result.json belongs to run {res.run.run_id}, not {run_id}"
            return _failed("MalformedResult", msg, "write")
        return Classified("completed", result=res)
    info = read_error(run_dir)
    where = info.phase if info else phase
    if outcome.interrupted:
        msg = "interrupted by Ctrl+C; the harness process group was killed"
        return Classified(
            "interrupted", error=RunError(type="Interrupted", message=msg, phase=where)
        )
    if outcome.timed_out:
        msg = (
            f"no result within experiment_timeout_seconds = {timeout:g} s"
            + (f" (still in phase `{where}`)" if where else "")
            + "; the run was stopped. Fix: raise execution.experiment_timeout_seconds "
            "in the user config, or shrink the experiment"
        )
        return _failed("Timeout", msg, where)
    if outcome.failure == ENGINE_LOST:
        return _failed(ENGINE_LOST, outcome.detail or "the engine went away", where)
    if outcome.oom_killed:
        return _failed("OOMKilled", outcome.detail or "killed for lack of memory", where)
    terminated = info is not None and info.type == TERMINATED
    if outcome.failure == KILLED_EXTERNALLY and (info is None or terminated):
        return _failed(KILLED_EXTERNALLY, outcome.detail or "killed from outside", where)
    if terminated:  # neither our timeout nor Ctrl+C: someone else sent it
        msg = (
            "the harness got SIGTERM from something other than llem-docker (`docker stop`, "
            "`kill`, a scheduler, or the engine shutting down)"
            + (f" in phase `{where}`" if where else "")
            + "; it recorded that and stopped. Fix: nothing in the experiment; run it again "
            "with `llem-docker run STUDY --resume RESULTS_DIR`"
        )
        return _failed(KILLED_EXTERNALLY, msg, where)
    if info is not None:
        return _failed(info.type, info.message, info.phase)
    if outcome.failure is not None:
        return _failed(outcome.failure, outcome.detail or outcome.failure, phase)
    how = f"exited with code {outcome.exit_code}" if outcome.exit_code is not None else "failed"
    detail = f" ({outcome.detail})" if outcome.detail else ""
    tail = log_tail(run_dir / LOG_FILE)
    msg = f"the harness {how}{detail} and wrote neither result.json nor error.json"
    msg += f"; last lines of {LOG_FILE}:\n{tail}" if tail else f"; {LOG_FILE} is empty"
    return _failed("HarnessCrashed", msg, phase)


def read_error(run_dir: Path) -> ErrorInfo | None:
    path = run_dir / ERROR_FILE
    if not path.exists():
        return None
    try:
        return ErrorInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError):
        return None


def log_tail(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=LOG_TAIL_LINES)).rstrip()
    except OSError:
        return ""
