"""Energy meter protocol: a tiny begin/end-window API in the spirit of Zeus's ZeusMonitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sample:
    """One row of timeseries.parquet (one GPU at one instant)."""

    t_s: float  # seconds since the meter started (monotonic clock)
    gpu_index: int
    power_w: float | None
    energy_mj: float | None  # NVML total-energy counter, millijoules since driver load
    temperature_c: float | None
    memory_used_mb: float | None
    sm_util_pct: float | None
    throttle_reasons: int | None  # NVML clocks-event-reasons bitmask


@dataclass
class WindowReading:
    """Energy of one measurement window. `None` figures carry `unavailable_reason`."""

    duration_s: float
    total_j: float | None
    per_device_j: dict[str, float] | None
    method: str | None  # "nvml_counter" | "nvml_power_integral" | "zeus"
    unavailable_reason: str | None = None
    power_integral_j: float | None = None  # cross-check: integral of sampled power
    throttled: bool = False
    warnings: list[str] = field(default_factory=list)
    # The window's edges on the timeseries clock (t_s), where the meter samples one.
    start_s: float | None = None
    end_s: float | None = None


class EnergyMeter(Protocol):
    name: str

    def start(self) -> None:
        """Open the device session and start sampling."""

    def measure_baseline(self, seconds: float) -> float | None:
        """Mean idle power (W, summed over devices) over `seconds`; None if unavailable."""

    def begin_window(self) -> None: ...

    def end_window(self) -> WindowReading: ...

    def stop(self) -> None:
        """Stop sampling and release the device session. Idempotent."""

    def samples(self) -> list[Sample]: ...

    def devices(self) -> list[dict[str, Any]]:
        """Per-device facts for the environment snapshot (name, uuid, memory, power limit…)."""
