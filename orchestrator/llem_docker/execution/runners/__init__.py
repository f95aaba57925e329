"""Runners: how one prepared run directory gets executed (this Python, Docker, Apptainer).

`RUNNERS` is the registry: a runner kind -> the class that implements it, imported only when
chosen (the Docker SDK loads only for the docker runner). Add a runner by writing a class
that meets `base.Runner` and naming it here.
"""

from __future__ import annotations

import importlib

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import LlemError
from llem_docker.execution.runners.base import (
    ENGINE_LOST,
    KILLED_EXTERNALLY,
    EventHandler,
    Runner,
    RunnerFactory,
    RunOutcome,
)

RUNNERS: dict[str, str] = {
    "local": "llem_docker.execution.runners.local:LocalRunner",
    "docker": "llem_docker.execution.runners.docker:DockerRunner",
    "apptainer": "llem_docker.execution.runners.apptainer:ApptainerRunner",
    "singularity": "llem_docker.execution.runners.apptainer:ApptainerRunner",
}


def make_runner(spec: RunnerSpec, settings: Settings) -> Runner:
    """The one place that maps a resolved runner choice to an implementation."""
    target = RUNNERS.get(spec.kind)
    if target is None:
        raise LlemError(f"unknown runner kind `{spec.kind}` (chosen by {spec.source})")
    module, name = target.split(":")
    runner: Runner = getattr(importlib.import_module(module), name).from_settings(spec, settings)
    return runner


__all__ = [
    "ENGINE_LOST",
    "KILLED_EXTERNALLY",
    "RUNNERS",
    "EventHandler",
    "RunOutcome",
    "Runner",
    "RunnerFactory",
    "make_runner",
]
