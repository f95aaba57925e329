"""Zeus (`energy_backend: zeus`) for the window's energy; NvmlMeter for everything else.

Zeus's CPU monitor (RAPL, all packages) gives the CPU and DRAM energy of the same window
where Zeus can read RAPL; elsewhere the harness's own reader (energy/rapl.py) says why not.

Zeus reads the same NVML energy counter. ZeusMeter refuses GPUs without that counter,
on which ZeusMonitor would start a power-polling process of its own: the NvmlMeter's
sampler stays the only one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llem_harness.contract_env import Gpu
from llem_harness.energy.base import CpuReading, Sample, WindowReading
from llem_harness.energy.nvml import NvmlMeter
from llem_harness.energy.nvml_device import visible_gpu_indices
from llem_harness.energy.timeseries import window_warnings

ZEUS_MISSING = (
    "energy_backend zeus requested but the zeus package is not installed "
    "(pip install llem-harness[zeus])"
)
_WINDOW = "llem_measurement"


def _zeus_monitor() -> Callable[..., Any]:
    try:
        from zeus.monitor import ZeusMonitor
    except ImportError as exc:
        raise RuntimeError(ZEUS_MISSING) from exc
    return ZeusMonitor  # type: ignore[no-any-return]


def _cpu(measurement: Any) -> CpuReading | None:
    """Zeus's CPU and DRAM energy of the window (J per CPU package), if it measured any."""
    cpu = getattr(measurement, "cpu_energy", None)
    if not cpu:
        return None
    dram = getattr(measurement, "dram_energy", None)
    return CpuReading(
        cpu_j=float(sum(cpu.values())),
        dram_j=float(sum(dram.values())) if dram else None,
        per_package_j={str(k): float(v) for k, v in cpu.items()},
    )


class ZeusMeter:
    """ZeusMonitor windows; samples, baseline and device facts come from an NvmlMeter."""

    name = "zeus"

    def __init__(
        self,
        gpu_indices: list[int],
        sample_interval_ms: int,
        *,
        nvml: Any = None,
        nvml_meter: NvmlMeter | None = None,
        monitor_factory: Callable[..., Any] | None = None,
        cuda_indices: list[int] | None = None,
    ) -> None:
        self.gpu_indices = list(gpu_indices)
        self._nvml = nvml
        self._meter = nvml_meter or NvmlMeter(gpu_indices, sample_interval_ms, nvml=nvml)
        self._factory = monitor_factory
        self._cuda_indices = cuda_indices
        self._monitor: Any = None

    def _zeus_indices(self) -> list[int]:
        """Zeus counts GPUs as CUDA does (positions in CUDA_VISIBLE_DEVICES), NVML does not."""
        if self._cuda_indices is not None:
            return self._cuda_indices
        visible = visible_gpu_indices(self._nvml)
        missing = [g for g in self.gpu_indices if g not in visible]
        if missing:
            raise RuntimeError(f"GPU(s) {missing} are not in CUDA_VISIBLE_DEVICES ({visible})")
        return [visible.index(g) for g in self.gpu_indices]

    def start(self) -> None:
        if self._monitor is not None:
            return
        factory = self._factory or _zeus_monitor()
        self._meter.start()
        try:
            if not self._meter.counter_supported():
                raise RuntimeError(
                    "energy_backend zeus needs the NVML energy counter (Volta or newer) on "
                    "every GPU; use energy_backend nvml, which integrates sampled power"
                )
            self._cuda_indices = self._zeus_indices()
            # cpu_indices=None: every package Zeus can read, none (no error) where RAPL is
            # missing or root-only.
            self._monitor = factory(
                gpu_indices=self._cuda_indices, cpu_indices=None, approx_instant_energy=True
            )
        except Exception:
            self._meter.stop()
            raise

    def stop(self) -> None:
        self._monitor = None
        self._meter.stop()

    def measure_baseline(self, seconds: float) -> float | None:
        return self._meter.measure_baseline(seconds)

    def begin_window(self) -> None:
        if self._monitor is None:
            raise RuntimeError("ZeusMeter.start() was not called")
        self._meter.begin_window()
        # The harness synchronises the engine at both edges itself; Zeus's sync needs torch.
        self._monitor.begin_window(_WINDOW, sync_execution=False)

    def end_window(self) -> WindowReading:
        if self._monitor is None:
            raise RuntimeError("ZeusMeter.start() was not called")
        measurement = self._monitor.end_window(_WINDOW, sync_execution=False)
        nvml = self._meter.end_window()
        energy: dict[int, float] = dict(measurement.gpu_energy)
        cuda = self._cuda_indices or []
        missing = [g for g, c in zip(self.gpu_indices, cuda, strict=True) if c not in energy]
        per_device = None
        if not missing:
            per_device = {
                str(g): float(energy[c]) for g, c in zip(self.gpu_indices, cuda, strict=True)
            }
        total = sum(per_device.values()) if per_device is not None else None
        duration = float(measurement.time)
        return WindowReading(
            duration_s=duration,
            total_j=total,
            per_device_j=per_device,
            method="zeus" if per_device is not None else None,
            unavailable_reason=f"Zeus gave no energy for GPU(s) {missing}" if missing else None,
            power_integral_j=nvml.power_integral_j,
            throttled=nvml.throttled,
            warnings=window_warnings(duration, total, self._meter.last_throttle_bits),
            start_s=nvml.start_s,
            end_s=nvml.end_s,
            cpu=_cpu(measurement),
        )

    def samples(self) -> list[Sample]:
        return self._meter.samples()

    def devices(self) -> list[Gpu]:
        return self._meter.devices()

    def device_warnings(self) -> list[str]:
        return self._meter.device_warnings()

    def clock_origin(self) -> float | None:
        """The samples come from the NvmlMeter, so their clock is its clock."""
        return self._meter.clock_origin()

    def counter_supported(self) -> bool:
        return self._meter.counter_supported()
