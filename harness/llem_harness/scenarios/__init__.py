"""The scenarios: how the load reaches the engine, one module each, behind `Scenario`.

run.py drives every run through the same phases; a scenario says what differs:

1. `backend(cfg)`: the backend that carries the load (offline: the engine itself; serving:
   the engine's server and the load generator);
2. `import_engine(cfg)`: the engine imports done beside the baseline (timed apart from load);
3. after the measured window, still in the measure phase, `after_window(backend, meters,
   prompts)`: the scenario's further passes (offline: the one-token prefill pass);
4. once the result is built, `finish(result, run)`: the scenario's own blocks (offline: the
   phases, FLOPs, responses and requests; serving: the `serving` block and its requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llem_harness.backends.base import Backend
from llem_harness.backends.spec import load_attr
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.energy import EnergyMeter
from llem_harness.energy.measurement import Meters
from llem_harness.window import Window

SCENARIOS: dict[str, str] = {
    "offline": "llem_harness.scenarios.offline:Offline",
    "serving": "llem_harness.scenarios.serving:Serving",
}


@dataclass
class RunParts:
    """What a scenario's `finish` reads of the run."""

    backend: Backend
    meter: EnergyMeter
    prompts: list[list[int]]
    window: Window
    run_dir: Path


class Scenario(Protocol):
    """One way of loading the engine. Call order: the module docstring."""

    def backend(self, cfg: ExperimentConfig) -> Backend: ...

    def import_engine(self, cfg: ExperimentConfig) -> None: ...

    def after_window(self, backend: Backend, meters: Meters, prompts: list[list[int]]) -> None:
        """Further passes after the measured window, in the measure phase."""

    def finish(self, result: ExperimentResult, run: RunParts) -> None:
        """The scenario's own blocks of the result, and its warnings."""


def scenario_for(cfg: ExperimentConfig) -> Scenario:
    scenario: Scenario = load_attr(SCENARIOS[cfg.scenario])()
    return scenario
