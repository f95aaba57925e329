"""The measured window: one synchronised pass inside one window of every reader (the GPU meter,
RAPL, CodeCarbon: energy/measurement.py)."""

from __future__ import annotations

from dataclasses import dataclass

from llem_harness.backends.base import Backend, PassResult
from llem_harness.energy.base import CpuReading, WindowReading
from llem_harness.energy.measurement import Measurement, Meters
from llem_harness.phases import quiet_gc


@dataclass
class Window:
    """The measured pass and its measurement."""

    measured: PassResult
    measurement: Measurement

    @property
    def duration(self) -> float:
        return self.measurement.seconds

    @property
    def opened(self) -> float:
        return self.measurement.opened

    @property
    def reading(self) -> WindowReading:
        return self.measurement.gpu

    @property
    def cpu(self) -> CpuReading:
        return self.measurement.cpu


def measure_window(backend: Backend, meters: Meters, prompts: list[list[int]]) -> Window:
    """The measured pass over `prompts`, every reader opened and closed around it."""
    with quiet_gc():
        backend.synchronize()
        with meters.window() as w:
            measured = backend.generate(prompts, timed=True)
            backend.synchronize()
    return Window(measured, w.result())
