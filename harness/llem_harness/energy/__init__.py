"""Energy meters: NVML (default), Zeus (optional), or none; the timeseries and CO2.

`make_meter` picks the meter for the measurement settings. Heavy or optional libraries
(pynvml, zeus, codecarbon, pyarrow) are imported only when used.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from llem_harness.energy.base import EnergyMeter, Sample, WindowReading
from llem_harness.energy.co2 import CodeCarbonTracker, co2_kg
from llem_harness.energy.null import NullMeter
from llem_harness.energy.nvml import NvmlMeter
from llem_harness.energy.nvml_device import NvmlSession, visible_gpu_indices
from llem_harness.energy.timeseries import power_integral_j, read_timeseries, write_timeseries
from llem_harness.energy.zeus import ZEUS_MISSING, ZeusMeter

if TYPE_CHECKING:
    from llem_harness.contract import MeasurementSettings

__all__ = [
    "CodeCarbonTracker",
    "EnergyMeter",
    "NullMeter",
    "NvmlMeter",
    "Sample",
    "WindowReading",
    "ZeusMeter",
    "adjusted_energy_j",
    "co2_kg",
    "make_meter",
    "power_integral_j",
    "probe_gpus",
    "read_timeseries",
    "visible_gpu_indices",
    "write_timeseries",
]

DISABLED = "energy measurement disabled (energy_backend: none)"


def adjusted_energy_j(
    total_j: float | None, baseline_power_w: float | None, duration_s: float
) -> float | None:
    """Energy above idle: total − baseline power × duration; None if either is unknown."""
    if total_j is None or baseline_power_w is None:
        return None
    return total_j - baseline_power_w * duration_s


def probe_gpus(
    gpu_indices: list[int] | None = None, *, nvml: Any = None
) -> tuple[list[int], str | None]:
    """The GPUs to measure (NVML indices), or an empty list and the precise reason why none."""
    try:
        m = NvmlSession.acquire(nvml)
    except ImportError as exc:
        return [], f"NVML unavailable: the nvidia-ml-py package is not installed ({exc})"
    except Exception as exc:
        return [], f"NVML unavailable: {str(exc) or type(exc).__name__}"
    try:
        count = int(m.nvmlDeviceGetCount())
        chosen = list(gpu_indices) if gpu_indices is not None else visible_gpu_indices(m)
    except Exception as exc:
        return [], f"cannot list the NVIDIA GPUs: {str(exc) or type(exc).__name__}"
    finally:
        NvmlSession.release()
    if count == 0 or not chosen:
        return [], "no NVIDIA GPU visible"
    unknown = [i for i in chosen if not 0 <= i < count]
    if unknown:
        return [], f"GPU index(es) {unknown} do not exist (NVML sees {count} GPU(s))"
    return chosen, None


def make_meter(
    settings: MeasurementSettings, gpu_indices: list[int] | None = None, *, nvml: Any = None
) -> EnergyMeter:
    """The meter for `settings.energy_backend`, not yet started.

    "none" gives a NullMeter. "auto" gives an NvmlMeter when NVML works and sees a GPU,
    else a NullMeter carrying the reason. An explicitly requested backend ("nvml", "zeus")
    that cannot work raises RuntimeError rather than silently measuring nothing.
    """
    backend = settings.energy_backend
    if backend == "none":
        return NullMeter(DISABLED)
    if backend == "zeus" and importlib.util.find_spec("zeus") is None:
        raise RuntimeError(ZEUS_MISSING)
    chosen, reason = probe_gpus(gpu_indices, nvml=nvml)
    if reason is not None:
        if backend == "auto":
            return NullMeter(reason)
        raise RuntimeError(f"energy_backend {backend} requested but {reason}")
    if backend == "zeus":
        return ZeusMeter(chosen, settings.sample_interval_ms, nvml=nvml)
    return NvmlMeter(chosen, settings.sample_interval_ms, nvml=nvml)
