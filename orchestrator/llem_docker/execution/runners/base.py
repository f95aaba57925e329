"""The Runner protocol: run `llem-harness run <run_dir>` and report how the process ended.

A runner's life, as the study loop drives it:

1. `from_settings(spec, settings)` (a classmethod) builds it for one backend's runner choice
   (`RunnerSpec`: kind, target such as an image, and where the choice came from). The
   registry in `runners/__init__.py` maps the kind to the class.
2. `info()` once, before the runs: what goes into each experiment.json's `runner`.
3. `run(run_dir, timeout_s=..., on_event=...)` once per run, blocking: the harness runs
   against the prepared run directory, its JSON progress events go to `on_event`, and the
   returned RunOutcome says how the process ended (the results are read from `run_dir`).
   Nothing the run started outlives the call, on timeout and Ctrl+C too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llem_docker.config.settings import RunnerSpec, Settings
from llem_harness.host_api import RunnerInfo

EventHandler = Callable[[dict[str, Any]], None]

# Runner failure types (RunOutcome.failure) that the study loop and classify() act on.
ENGINE_LOST = "EngineUnavailable"  # the engine stopped answering: the study stops
KILLED_EXTERNALLY = "KilledExternally"  # stopped by someone else than llem-docker


@dataclass
class RunOutcome:
    """How the harness process ended. Results themselves are read from the run directory."""

    exit_code: int | None  # None when the process never started
    timed_out: bool = False
    interrupted: bool = False
    oom_killed: bool = False
    detail: str | None = None
    # Set when the runner itself failed (no image, engine gone, GPU request refused): the
    # error type recorded in the manifest, with `detail` as its message.
    failure: str | None = None
    # How long the harness process itself ran (for docker: the engine's StartedAt..FinishedAt).
    process_s: float | None = None


class Runner(Protocol):
    """One way to start the harness: in this Python (`local`), in a Docker container, or in
    an Apptainer/Singularity container. The life cycle is in the module docstring."""

    kind: str

    @classmethod
    def from_settings(cls, spec: RunnerSpec, settings: Settings) -> Runner:
        """Build the runner for `spec` from the resolved settings."""
        ...

    def info(self) -> RunnerInfo:
        """What goes into experiment.json's `runner` (type, image, image digest)."""
        ...

    def run(self, run_dir: Path, *, timeout_s: float, on_event: EventHandler) -> RunOutcome:
        """Run the harness against `run_dir`; stream its JSON progress events to `on_event`.

        Blocks until the process (and everything it started) is gone. Writes
        `run_dir/container.log`. On timeout or KeyboardInterrupt the whole process is killed
        and the outcome says so; the interrupt is not re-raised here.
        """
        ...


RunnerFactory = Callable[[RunnerSpec, Settings], Runner]
