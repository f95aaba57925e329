"""The Runner protocol: run `llem-harness run <run_dir>` and report how the process ended."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llem_docker.errors import LlemError
from llem_docker.settings import RunnerSpec, Settings
from llem_harness.contract import RunnerInfo

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
    kind: str

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


def make_runner(spec: RunnerSpec, settings: Settings) -> Runner:
    """The one place that maps a resolved runner choice to an implementation."""
    if spec.kind == "local":
        from llem_docker.runners.local import LocalRunner

        hub = settings.value("output.hub_cache_dir")
        return LocalRunner(
            model_cache_dir=str(settings.value("output.model_cache_dir")),
            engine_cache_dir=str(settings.value("output.engine_cache_dir")),
            hub_cache_dir=None if hub is None else str(hub),
        )
    if spec.kind == "docker":
        from llem_docker.runners.docker import DockerRunner

        return DockerRunner.from_settings(spec, settings)
    if spec.kind in ("apptainer", "singularity"):
        from llem_docker.runners.apptainer import ApptainerRunner

        return ApptainerRunner.from_settings(spec, settings)
    raise LlemError(f"unknown runner kind `{spec.kind}` (chosen by {spec.source})")
