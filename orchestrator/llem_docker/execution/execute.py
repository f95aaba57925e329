"""One run, the same wherever it runs: the inline study loop and a SLURM array task both call
`execute_run`, which starts the runner, follows the harness's phase events and classifies the
outcome from the exchange contract (classify.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem_docker.execution.classify import Classified, classify
from llem_docker.execution.runners import Runner
from llem_docker.execution.runners.base import EventHandler, RunOutcome


@dataclass(frozen=True)
class RunExecution:
    outcome: RunOutcome  # how the process or container ended
    got: Classified  # the run's state, result and error


def execute_run(
    runner: Runner,
    run_id: str,
    run_dir: Path,
    *,
    timeout_s: float,
    on_event: EventHandler,
    before_classify: Callable[[], None] | None = None,
) -> RunExecution:
    """Run the prepared run in `run_dir` through `runner` and classify how it ended. The last
    phase the harness announced goes into the error, if any. `before_classify` runs once the
    process has ended (the SLURM task stops taking SIGTERM there: what follows is recording)."""
    phase: list[str | None] = [None]

    def follow(event: dict[str, Any]) -> None:
        if event.get("event") == "phase":
            phase[0] = str(event.get("phase"))
        on_event(event)

    outcome = runner.run(run_dir, timeout_s=timeout_s, on_event=follow)
    if before_classify is not None:
        before_classify()
    return RunExecution(outcome, classify(run_id, run_dir, outcome, phase[0], timeout_s))
