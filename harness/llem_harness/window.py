"""The measured window: one synchronised pass between the energy readers' edges.

The GPU meter, the CPU/DRAM RAPL reader and (when asked for) CodeCarbon open and close around
the same pass; the pass's own clock gives the duration, and `time.monotonic()` at its opening
(which the engines' per-request times share) places the requests in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llem_harness.backends.base import Backend, PassResult
from llem_harness.energy import CodeCarbonTracker, EnergyMeter
from llem_harness.energy.base import WindowReading
from llem_harness.energy.rapl import CpuReading, RaplReader
from llem_harness.phases import quiet_gc


@dataclass
class Window:
    """What one measured window gave."""

    measured: PassResult
    duration: float  # seconds, the pass's own clock
    opened: float  # time.monotonic() at the window's opening
    reading: WindowReading  # the GPU meter's
    cpu: CpuReading  # the CPU packages' and DRAM's, over the same window
    co2_kg: float | None  # CodeCarbon's, when it tracked the window


def measure_window(
    backend: Backend,
    meter: EnergyMeter,
    prompts: list[list[int]],
    tracker: CodeCarbonTracker | None = None,
) -> Window:
    """The measured pass over `prompts`, every reader opened and closed around it."""
    rapl = RaplReader()
    with quiet_gc():
        backend.synchronize()
        meter.begin_window()
        rapl.begin()
        if tracker is not None:
            tracker.start()
        t0, opened = time.perf_counter(), time.monotonic()
        measured = backend.generate(prompts, timed=True)
        backend.synchronize()
        duration = time.perf_counter() - t0
        reading = meter.end_window()
        cpu = rapl.end()
        co2 = tracker.stop() if tracker is not None else None
    return Window(measured, duration, opened, reading, cpu, co2)
