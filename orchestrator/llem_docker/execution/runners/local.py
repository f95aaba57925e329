"""LocalRunner: the harness as a subprocess of this Python environment (no container)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.runners.base import EventHandler, RunOutcome
from llem_docker.execution.runners.process import run_process
from llem_harness.host_api import HOST_PID_ENV, RunnerInfo

DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "llem_harness.cli", "run")


class LocalRunner:
    kind = "local"

    def __init__(
        self,
        *,
        model_cache_dir: str | Path | None = None,
        engine_cache_dir: str | Path | None = None,
        hub_cache_dir: str | Path | None = None,
        command: Sequence[str] | None = None,
        grace_s: float = 5.0,
        env: dict[str, str] | None = None,
    ) -> None:
        """`command` is the harness invocation (default: DEFAULT_COMMAND); the run directory is
        appended to it."""
        self.command = list(DEFAULT_COMMAND if command is None else command)
        self.grace_s = grace_s
        self.env = dict(os.environ if env is None else env)
        if model_cache_dir is not None:  # resolved from HF_HOME itself unless configured
            self.env["HF_HOME"] = str(Path(model_cache_dir).expanduser().absolute())
        if hub_cache_dir is not None:
            self.env["HF_HUB_CACHE"] = str(Path(hub_cache_dir).expanduser().absolute())
        if engine_cache_dir is not None:
            self.env["LLEM_ENGINE_CACHE"] = str(Path(engine_cache_dir).expanduser().absolute())
        self.env["PYTHONUNBUFFERED"] = "1"

    @classmethod
    def from_settings(cls, spec: RunnerSpec, settings: Settings) -> LocalRunner:
        hub = settings.output.hub_cache_dir
        return cls(
            model_cache_dir=str(settings.output.model_cache_dir),
            engine_cache_dir=str(settings.output.engine_cache_dir),
            hub_cache_dir=None if hub is None else str(hub),
        )

    def info(self) -> RunnerInfo:
        return RunnerInfo(type="local", image=None, image_digest=None)

    def run(self, run_dir: Path, *, timeout_s: float, on_event: EventHandler) -> RunOutcome:
        return run_process(
            [*self.command, str(run_dir)],
            run_dir,
            env={**self.env, HOST_PID_ENV: str(os.getpid())},  # it dies with this process
            timeout_s=timeout_s,
            on_event=on_event,
            grace_s=self.grace_s,
        )
