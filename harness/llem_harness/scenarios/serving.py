"""The serving scenario: the engine's own server under load from the load generator, requests
arriving over time (serving/, docs/serving.md). The harness's process imports no engine."""

from __future__ import annotations

from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.energy.measurement import Meters
from llem_harness.scenarios import RunParts
from llem_harness.serving.backend import ServingBackend
from llem_harness.serving.measure import finish_serving


class Serving:
    def backend(self, cfg: ExperimentConfig) -> Backend:
        return ServingBackend(cfg.backend)

    def import_engine(self, cfg: ExperimentConfig) -> None:
        """The server imports the engine in its own process, at load."""

    def after_window(self, backend: Backend, meters: Meters, prompts: list[list[int]]) -> None:
        """A server's phases cannot be split by a one-token pass (serving/measure.py)."""

    def finish(self, result: ExperimentResult, run: RunParts) -> None:
        assert isinstance(run.backend, ServingBackend)
        w = run.window
        finish_serving(result, run.backend, run.meter, w.reading, w.duration, w.opened, run.run_dir)
