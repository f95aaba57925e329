"""The report's serving part: a table, the SLO attainment line, and serving.png.

Only for studies with `scenario: serving` points. Every figure is the mean across cycles of a
point with its 95% interval, as in the main table (on the log scale, except SLO attainment,
goodput and failed requests: `LINEAR_METRICS`). serving.png has two panels against the requested
request rate: energy per request (the steady window's, and the whole run's) and the latency
percentiles (TTFT and TPOT, p50 and p99), with the study's SLOs as horizontal lines and the
rate where attainment falls below the target as a dashed vertical line. A point
at `request_rate: inf` has no place on that axis and is left out of the figure (the table
has it). The attainment target (`SLO_TARGET`) is the share of requests that must meet every
SLO; the report names, per series, the first rate at which the mean attainment falls below it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from llem_docker.report.fmt import num
from llem_docker.report.stats import error_bars

SLO_TARGET = 0.9
# column in results.parquet → (short label, unit)
SERVING_METRICS: dict[str, tuple[str, str]] = {
    "achieved_rate": ("achieved rate", "req/s"),
    "energy_per_request_j": ("J/request (steady)", "J"),
    "energy_per_request_whole_j": ("J/request (whole run)", "J"),
    "serving_energy_per_output_token_j": ("J/token (steady)", "J"),
    "ttft_ms_p50": ("TTFT p50", "ms"),
    "ttft_ms_p99": ("TTFT p99", "ms"),
    "tpot_ms_p50": ("TPOT p50", "ms"),
    "tpot_ms_p99": ("TPOT p99", "ms"),
    "slo_attainment": ("SLO attainment", "fraction"),
    "goodput_rps": ("goodput", "req/s"),
    "requests_failed": ("failed requests", "count"),
    "loadgen_cpu_fraction": ("load generator CPU", "cores"),
}
# figures that can be 0 (or reach 1): their interval is Student's t on x, not on ln x
LINEAR_METRICS = ("slo_attainment", "goodput_rps", "requests_failed", "accuracy")
# the point's fixed facts, read from its first completed row
FACTS = ("scenario", "request_rate", "slo_ttft_ms", "slo_tpot_ms")


def is_serving(p: Any) -> bool:
    return bool(p.facts.get("scenario") == "serving")


def rate_text(rate: Any) -> str:
    if rate is None:
        return "n/a"
    return "inf" if isinstance(rate, float) and math.isinf(rate) else num(float(rate))


def columns(cell_of: Any, points: list[Any]) -> tuple[list[str], list[list[str]]]:
    """The serving table's header and rows (`cell_of(summary)` formats one figure)."""
    head = ["point", "requested rate (req/s)"]
    head += [f"{label} ({unit})" for label, unit in SERVING_METRICS.values()]
    rows = [
        [p.label, rate_text(p.facts.get("request_rate"))]
        + [cell_of(p.stats[m]) for m in SERVING_METRICS]
        for p in points
    ]
    return head, rows


def _series(points: list[Any]) -> dict[str, list[Any]]:
    """One series per backend and per value of every swept key but the request rate."""
    out: dict[str, list[Any]] = defaultdict(list)
    for p in points:
        others = {k: v for k, v in p.swept.items() if k != "serving.request_rate"}
        name = " ".join([p.backend, *[f"{k}={v}" for k, v in sorted(others.items())]])
        out[name].append(p)
    return out


def _finite(p: Any) -> float | None:
    rate = p.facts.get("request_rate")
    return float(rate) if isinstance(rate, int | float) and math.isfinite(rate) else None


def _first_below(pts: list[Any], target: float) -> tuple[float | None, list[tuple[float, float]]]:
    """The first finite requested rate whose mean SLO attainment is below `target`, and the
    (rate, attainment) pairs it was judged on."""
    measured = [(r, p.stats["slo_attainment"].mean) for p in pts if (r := _finite(p))]
    pairs = sorted((r, a) for r, a in measured if a is not None)
    return next((r for r, a in pairs if a < target), None), pairs


def attainment_lines(points: list[Any], target: float = SLO_TARGET) -> list[str]:
    """Per series: the first requested rate whose mean SLO attainment is below `target`."""
    lines = []
    for name, pts in _series(points).items():
        below, measured = _first_below(pts, target)
        if not measured:
            continue
        top = num(measured[-1][0])
        lines.append(
            f"{name}: SLO attainment falls below {target:.0%} at {num(below)} req/s"
            if below is not None
            else f"{name}: SLO attainment stays at or above {target:.0%} up to {top} req/s"
        )
    return lines


def draw(points: list[Any], path: Path) -> Path | None:
    """serving.png, or None when no point has a finite rate and a measured figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.0), dpi=100)
    energy_ax, latency_ax = fig.subplots(1, 2)
    drawn = energy_drawn = False
    plotted: dict[Any, list[tuple[float, float]]] = {energy_ax: [], latency_ax: []}
    for name, pts in _series(points).items():
        pts = sorted((p for p in pts if _finite(p) is not None), key=_finite)  # type: ignore[arg-type]
        xs = [_finite(p) for p in pts]
        for ax, metric, style, label in (
            (energy_ax, "energy_per_request_j", "o-", "steady"),
            (energy_ax, "energy_per_request_whole_j", "s--", "whole run"),
            (latency_ax, "ttft_ms_p50", "o-", "TTFT p50"),
            (latency_ax, "ttft_ms_p99", "o:", "TTFT p99"),
            (latency_ax, "tpot_ms_p50", "^-", "TPOT p50"),
            (latency_ax, "tpot_ms_p99", "^:", "TPOT p99"),
        ):
            got = [(x, p.stats[metric]) for x, p in zip(xs, pts, strict=True)]
            got = [(x, s) for x, s in got if s.mean is not None]
            if not got:
                continue
            ax.errorbar([x for x, _ in got], [s.mean for _, s in got],
                        yerr=error_bars([s for _, s in got]), fmt=style, capsize=3,
                        label=f"{name}, {label}")  # fmt: skip
            plotted[ax] += [(x, s.mean) for x, s in got if x is not None]
            drawn = True
            energy_drawn = energy_drawn or ax is energy_ax
    if not drawn:
        return None
    slos = sorted({(k, v) for p in points for k in ("slo_ttft_ms", "slo_tpot_ms")
                   if (v := p.facts.get(k))})  # fmt: skip
    for key, value in slos:
        latency_ax.axhline(value, color="red", linewidth=1, label=f"SLO {key[4:]}: {num(value)}")
    for name, pts in _series(points).items():
        below, _ = _first_below(pts, SLO_TARGET)
        if below is not None:
            for ax in (energy_ax, latency_ax):
                ax.axvline(below, color="grey", linestyle="--", linewidth=1,
                           label=f"{name}: attainment < {SLO_TARGET:.0%}")  # fmt: skip
    if not energy_drawn:
        energy_ax.text(0.5, 0.5, "energy not measured\n(the runs say why)", ha="center",
                       va="center", transform=energy_ax.transAxes)  # fmt: skip
    energy_ax.set(xlabel="request rate (req/s)", ylabel="J per request",
                  title="Energy per request")  # fmt: skip
    latency_ax.set(xlabel="request rate (req/s)", ylabel="ms", title="Latency percentiles")
    for ax in (energy_ax, latency_ax):
        _log_scales(ax, plotted[ax])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _log_scales(ax: Any, xy: list[tuple[float, float]]) -> None:
    """Log axes where the rates or the figures span a decade or more (a rate sweep usually
    doubles or quadruples). The intervals are on the log scale, so no bar reaches zero."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    xs = [x for x, _ in xy if x > 0]
    ys = [y for _, y in xy if y > 0]
    if xs and max(xs) >= 8 * min(xs):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(plain)
    if ys and max(ys) >= 10 * min(ys):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        if max(ys) < 100 * min(ys):  # minor labels only where few decades leave room
            ax.yaxis.set_minor_formatter(plain)
