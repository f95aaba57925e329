"""The meter for when energy cannot or should not be measured: every figure None, with why."""

from __future__ import annotations

import time
from collections.abc import Callable

from llem_harness.contract_env import Gpu
from llem_harness.energy.base import Sample, WindowReading


class NullMeter:
    """No GPU, no NVML, or `energy_backend: none`: no samples, no baseline, no energy."""

    name = "none"

    def __init__(self, reason: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.reason = reason
        self._clock = clock
        self._begin: float | None = None

    def start(self) -> None:
        return None

    def measure_baseline(self, seconds: float) -> float | None:
        return None

    def begin_window(self) -> None:
        self._begin = self._clock()

    def end_window(self) -> WindowReading:
        if self._begin is None:
            raise RuntimeError("end_window() without begin_window()")
        duration, self._begin = self._clock() - self._begin, None
        return WindowReading(
            duration_s=duration,
            total_j=None,
            per_device_j=None,
            method=None,
            unavailable_reason=self.reason,
        )

    def stop(self) -> None:
        return None

    def samples(self) -> list[Sample]:
        return []

    def devices(self) -> list[Gpu]:
        return []

    def clock_origin(self) -> float | None:
        return None  # no sampler, so no timeseries clock

    def counter_supported(self) -> bool:
        return False

    def device_warnings(self) -> list[str]:
        return []
