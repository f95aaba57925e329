"""One measurement per window, from every reader at once (as Zeus's `ZeusMonitor` gives one).

`Meters` holds the GPU meter (NVML, Zeus or none), the CPU packages' and DRAM's RAPL reader and,
when the study asks for it, CodeCarbon. `with meters.window() as w:` opens them all, in that
order, and starts the window's clock; leaving the block stops the clock and closes them in the
reverse order; `w.measurement` is then the window's `Measurement`: the GPUs' energy per device
with its method (or null and the reason), the CPU's and DRAM's (or null and the reason), CO2,
the seconds and the window's slice of the power timeseries. Call `backend.synchronize()` as the
block's last statement, so that the clock stops when the device has finished.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from llem_harness.energy.base import CpuReading, EnergyMeter, Sample, WindowReading
from llem_harness.energy.co2 import CodeCarbonTracker
from llem_harness.energy.rapl import RaplReader


@dataclass
class Measurement:
    """What one window gave, every figure with its reason where it has none."""

    seconds: float  # the window's clock (perf_counter), opening to closing
    opened: float  # time.monotonic() at the opening: the engines' per-request clock
    gpu: WindowReading  # per device, the total, the method, or the reason
    cpu: CpuReading  # the CPU packages' and DRAM's (RAPL), or the reasons
    co2_kg: float | None = None  # CodeCarbon's, when it tracked the window
    samples: list[Sample] = field(default_factory=list)  # the timeseries inside the window


@dataclass
class OpenWindow:
    """The block's handle: `measurement` is set when the block is left."""

    measurement: Measurement | None = None

    def result(self) -> Measurement:
        assert self.measurement is not None, "the window is still open"
        return self.measurement


class Meters:
    """The run's readers, opened and closed together around each window."""

    def __init__(self, gpu: EnergyMeter, tracker: CodeCarbonTracker | None = None) -> None:
        self.gpu, self.tracker = gpu, tracker

    @contextmanager
    def window(self, *, co2: bool = True, cpu: bool = True) -> Iterator[OpenWindow]:
        """One window. `co2=False` leaves CodeCarbon out (a pass beside the measured one),
        `cpu=False` the RAPL reader (its reasons then say so)."""
        handle, rapl = OpenWindow(), RaplReader() if cpu else None
        tracker = self.tracker if co2 else None
        self.gpu.begin_window()
        if rapl is not None:
            rapl.begin()
        if tracker is not None:
            tracker.start()
        t0, opened = time.perf_counter(), time.monotonic()
        try:
            yield handle
        finally:  # a failed pass still closes every reader (RAPL's thread, CodeCarbon's)
            seconds = time.perf_counter() - t0
            reading = self.gpu.end_window()
            own = rapl.end() if rapl is not None else CpuReading(None, None, {}, NOT_READ, NOT_READ)
            kg = tracker.stop() if tracker is not None else None
        handle.measurement = Measurement(seconds, opened, reading, own, kg, _inside(self, reading))


NOT_READ = "not read for this window"


def _inside(meters: Meters, reading: WindowReading) -> list[Sample]:
    if reading.start_s is None or reading.end_s is None:
        return []
    lo, hi = reading.start_s, reading.end_s
    return [s for s in meters.gpu.samples() if lo <= s.t_s <= hi]
