"""Energy meter protocol: a tiny begin/end-window API in the spirit of Zeus's ZeusMonitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from llem_harness.contract_env import Gpu


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
class CpuReading:
    """Energy over one window; None figures carry `unavailable_reason`."""

    cpu_j: float | None = None
    dram_j: float | None = None
    per_package_j: dict[str, float] = field(default_factory=dict)
    unavailable_reason: str | None = None
    dram_unavailable_reason: str | None = None


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
    # The CPU packages' and DRAM's energy where the meter measures them itself (Zeus's CPU
    # monitor); None leaves them to energy/rapl.py.
    cpu: CpuReading | None = None


class EnergyMeter(Protocol):
    """What the harness asks of an energy meter, in the order it asks:

    1. `start()` opens the device session and starts the sampler (if the meter has one).
    2. `measure_baseline(seconds)` once, before the model loads: idle power, or None.
    3. `begin_window()` / `end_window()` around each measured pass; `end_window` returns the
       window's energy as a WindowReading, with `None` figures and a reason where it has none.
    4. `samples()`, `clock_origin()`, `devices()`, `device_warnings()` once the window is
       closed: the timeseries, the clock its `t_s` counts from, the device facts for the
       environment snapshot, and warnings about the devices (e.g. a GPU in use by another
       process).
    5. `stop()` releases everything; idempotent, and called on every path out.
    """

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

    def devices(self) -> list[Gpu]:
        """Per-device facts for the environment snapshot (name, uuid, memory, power limit…)."""

    def clock_origin(self) -> float | None:
        """The `time.monotonic()` reading at which sample time `t_s` is 0; None without a
        sampler. The steady-state window maps request times onto samples through it."""

    def counter_supported(self) -> bool:
        """Whether every device has a hardware energy counter (NVML, Volta or newer)."""

    def device_warnings(self) -> list[str]:
        """Warnings about the devices seen while measuring (empty when there are none)."""
