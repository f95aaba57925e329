"""The run folder's side of the exchange contract: the request read, the outcome written.

`experiment.json` in; exactly one of `result.json` (a completed run) or `error.json` (any
failure, with the phase it happened in) out, each written atomically, with its event on
stdout for the host's progress (docs/exchange-contract.md).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from pydantic import ValidationError

from llem_harness.contract import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    RESULT_FILE,
    ErrorInfo,
    ExperimentResult,
    Phase,
    RunRequest,
    atomic_write_json,
    emit,
)


def clear_outcome(run_dir: Path) -> None:
    """A rerun in the same folder starts without the last run's outcome."""
    for stale in (RESULT_FILE, ERROR_FILE):
        (run_dir / stale).unlink(missing_ok=True)


def read_request(run_dir: Path) -> RunRequest:
    try:
        text = (run_dir / EXPERIMENT_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir / EXPERIMENT_FILE} does not exist") from None
    try:
        return RunRequest.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"malformed {EXPERIMENT_FILE}: {exc}") from None


def write_result(run_dir: Path, result: ExperimentResult) -> None:
    atomic_write_json(run_dir / RESULT_FILE, result.model_dump(mode="json"))
    emit(
        "done",
        throughput_tokens_per_s=result.throughput_tokens_per_s,
        energy_j=result.energy.total_j,
    )


def write_error(run_dir: Path, exc: BaseException, phase: Phase) -> None:
    info = ErrorInfo(
        type=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
        phase=phase,
    )
    try:
        atomic_write_json(run_dir / ERROR_FILE, info.model_dump(mode="json"))
    finally:
        emit("error", type=info.type, message=info.message, phase=info.phase)
