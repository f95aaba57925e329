"""The offline scenario: every prompt handed to the engine at once, in the harness's process.

After the window, the one-token pass splits prefill from decode (phases.py); the result then
gets the phases, the FLOPs, the responses and, for a steady-state window, the per-request
file (figures.py)."""

from __future__ import annotations

from llem_harness.backends import engine, import_engine
from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.energy.measurement import Meters
from llem_harness.figures import offline_figures
from llem_harness.phases import PREFILL_MIN_S, PrefillPass, prefill_pass
from llem_harness.scenarios import RunParts


class Offline:
    def __init__(self) -> None:
        self.prefill: PrefillPass | None = None

    def backend(self, cfg: ExperimentConfig) -> Backend:
        return engine(cfg.backend).make_backend()

    def import_engine(self, cfg: ExperimentConfig) -> None:
        import_engine(cfg.backend)

    def after_window(self, backend: Backend, meters: Meters, prompts: list[list[int]]) -> None:
        # without energy to measure, one pass gives the duration
        min_s = 0.0 if meters.gpu.name == "none" else PREFILL_MIN_S
        self.prefill = prefill_pass(backend, meters, prompts, min_s)

    def finish(self, result: ExperimentResult, run: RunParts) -> None:
        w = run.window
        offline_figures(
            result, w.measured, run.prompts, self.prefill, w.duration, w.reading, w.opened,
            run.run_dir,
        )  # fmt: skip
