"""The power timeseries: Parquet I/O, and the window analysis the meters share (trapezoid
power integral, throttling, warnings).

The harness writes the file with its own small writer (llem_harness.parquet), so the images
carry no pyarrow; reading it back (tests, the host) uses pyarrow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llem_harness.energy.base import Sample

MIN_WINDOW_S = 10.0
# Clocks-event reasons that do not hold the work back, hence not "throttling":
#   nvmlClocksEventReasonGpuIdle (0x1), nvmlClocksEventReasonApplicationsClocksSetting (0x2),
#   nvmlClocksEventReasonDisplayClockSetting (0x100).
# Every other bit counts, nvmlClocksEventReasonSwPowerCap (0x4) included.
BENIGN_THROTTLE_MASK = 0x1 | 0x2 | 0x100
THROTTLE_NAMES = {
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x200: "BoardLimit",
    0x400: "Reliability",
}

COLUMNS = (
    "t_s",
    "gpu_index",
    "power_w",
    "energy_mj",
    "temperature_c",
    "memory_used_mb",
    "sm_util_pct",
    "throttle_reasons",
)


# Column types as written: float64 unless named here; t_s and gpu_index are never null.
_TYPES = {"gpu_index": "int32", "throttle_reasons": "int64"}
_REQUIRED = {"t_s", "gpu_index"}


def write_timeseries(samples: list[Sample], path: Path) -> int:
    """Write one Parquet row per sample (an empty file with the schema if none); row count."""
    from llem_harness import __version__
    from llem_harness.parquet import Column, write_parquet

    ordered = sorted(samples, key=lambda s: (s.t_s, s.gpu_index))
    columns = [
        Column(
            name,
            _TYPES.get(name, "double"),
            [getattr(s, name) for s in ordered],
            nullable=name not in _REQUIRED,
        )
        for name in COLUMNS
    ]
    return write_parquet(path, columns, created_by=f"llem-harness {__version__}")


def read_timeseries(path: Path) -> list[Sample]:
    """Read a file written by `write_timeseries` back into samples."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return [Sample(**{name: row[name] for name in COLUMNS}) for row in rows]


def _integrate(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Trapezoid integral of a piecewise-linear curve over [t0, t1] ∩ [first, last]."""
    if len(points) < 2:
        return None
    lo, hi = max(t0, points[0][0]), min(t1, points[-1][0])
    if hi <= lo:
        return None

    def at(t: float, i: int) -> float:  # value at t on the segment points[i]..points[i + 1]
        (ta, pa_), (tb, pb) = points[i], points[i + 1]
        return pa_ if tb == ta else pa_ + (pb - pa_) * (t - ta) / (tb - ta)

    total = 0.0
    for i in range(len(points) - 1):
        a, b = max(points[i][0], lo), min(points[i + 1][0], hi)
        if b > a:
            total += (at(a, i) + at(b, i)) / 2.0 * (b - a)
    return total


def power_integral_per_gpu(samples: Iterable[Sample], t0: float, t1: float) -> dict[int, float]:
    """Energy (J) per GPU between t0 and t1 from the sampled power.

    Power is taken as linear between consecutive samples, interpolated at the window edges;
    the integral covers only the part of the window spanned by samples of that GPU (the
    meters take a sample at each window edge, so in practice the whole window). A GPU with
    fewer than two power readings around the window is left out.
    """
    per_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        if s.power_w is not None:
            per_gpu[s.gpu_index].append((s.t_s, s.power_w))
    out: dict[int, float] = {}
    for gpu, points in per_gpu.items():
        points.sort()
        value = _integrate(points, t0, t1)
        if value is not None:
            out[gpu] = value
    return out


def power_integral_j(samples: Iterable[Sample], t0: float, t1: float) -> float | None:
    """Trapezoid integral of sampled power over [t0, t1], summed over GPUs; None if no data."""
    per_gpu = power_integral_per_gpu(samples, t0, t1)
    return sum(per_gpu.values()) if per_gpu else None


def throttle_bits(samples: Iterable[Sample], t0: float, t1: float) -> int:
    """Union of the non-benign clocks-event bits seen in [t0, t1]."""
    bits = 0
    for s in samples:
        if t0 <= s.t_s <= t1 and s.throttle_reasons is not None:
            bits |= s.throttle_reasons & ~BENIGN_THROTTLE_MASK
    return bits


def window_warnings(duration_s: float, total_j: float | None, bits: int) -> list[str]:
    """The protocol's warnings for one window; `bits` are its non-benign throttle bits."""
    out: list[str] = []
    if duration_s < MIN_WINDOW_S:
        out.append(
            f"short measurement window: {duration_s:.2f} s < {MIN_WINDOW_S:.0f} s; the energy "
            "counter's update period and the power sampling make the figure imprecise, "
            "so measure more or longer requests"
        )
    if bits:
        names = ", ".join(n for bit, n in THROTTLE_NAMES.items() if bits & bit)
        out.append(
            f"GPU throttling seen during the measurement window "
            f"(clocks-event reasons {bits:#x}: {names or 'unknown'})"
        )
    if total_j is not None and total_j <= 0:
        out.append(
            f"zero or negative energy measured ({total_j:.3f} J over {duration_s:.2f} s); "
            "the energy figure is not trustworthy"
        )
    return out
