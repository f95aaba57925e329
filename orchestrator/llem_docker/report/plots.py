"""The report's figures, drawn with matplotlib's object API (no pyplot, no display needed).

- energy_per_token.png: J/token (the mean across cycles, with its 95% interval) against the
  swept parameter, one line per backend (and per value of any other swept key);
- throughput.png: tokens/s the same way;
- tradeoff.png: J/token against TTFT (tokens/s where no TTFT was measured), one marker per
  point;
- phase_split.png: J per prefill (input) token and J per decode (output) token, side by side
  for each point, mean and 95% interval;
- power_timeline.png: one run's sampled GPU power, with the measurement window shaded, and
  below it, where result.json has an `engine_metrics` block, the engine's load on the same
  clock: running and waiting requests against the engine's limit, KV-cache use in %
  (report/timeline.py);
- serving.png (serving studies): energy per request and latency percentiles against the
  request rate, with the SLOs (report/serving.py);
- quality.png (studies with a `quality:` section): accuracy against J/token, one marker per
  point, the Pareto frontier marked (report/quality.py);
- pareto.png: the energy–latency Pareto front, a panel per scenario (report/pareto.py).

The error bars are the tables' 95% intervals (report/stats.py): on the log scale for figures
that cannot be negative, so a bar never reaches below zero, and longer above the mean than
below. A figure whose data no run measured is not drawn; `skipped` says why (e.g. the energy
reason a CPU-only run gave). Each PNG is 800 × 500 pixels. Tick labels use `report.fmt.num`,
as the tables do. When several studies are compared, every line and marker is named
`<study>: <backend> …`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from llem_docker.report import pareto, quality, serving, timeline
from llem_docker.report.fmt import num
from llem_docker.report.points import METRICS, Point, Report
from llem_docker.report.stats import error_bars as errors
from llem_docker.store.layout import RunDir, StudyDir

SIZE_IN, DPI = (8.0, 5.0), 100


@dataclass
class Figures:
    written: dict[str, Path] = field(default_factory=dict)  # name → file
    skipped: dict[str, str] = field(default_factory=dict)  # name → why


def _ticks(*axes: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ticks = FuncFormatter(lambda v, _pos: num(v))  # the tables' numbers, no "1e-4" offsets
    for ax in axes:
        ax.xaxis.set_major_formatter(ticks)
        ax.yaxis.set_major_formatter(ticks)


def _figure() -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.add_subplot()
    _ticks(ax)
    return fig, ax


def _two_panels() -> Any:
    """A figure of two panels, one above the other, sharing the x axis (3:2 in height)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    _ticks(top, bottom)
    return fig, top, bottom


def _who(report: Report, p: Point) -> str:
    return f"{p.study}: {p.backend}" if report.comparing else p.backend


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def choose_x(report: Report, x: str | None) -> str | None:
    """The swept key to plot along: the one asked for, else the first with several values."""
    if x is not None:
        return x
    for key in report.swept_keys:
        if len({repr(p.swept.get(key)) for p in report.points if key in p.swept}) > 1:
            return key
    return None


def _series(report: Report, x: str | None) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = defaultdict(list)
    for p in report.points:
        rest = ", ".join(f"{k}={v}" for k, v in p.swept.items() if k != x)
        out[_who(report, p) + (f" ({rest})" if rest else "")].append(p)
    return out


def _point(report: Report, p: Point) -> str:
    return f"{p.study}: {p.label}" if report.comparing else p.label


def _line_plot(report: Report, metric: str, x: str | None, path: Path) -> Path | None:
    label, unit = METRICS[metric]
    series = _series(report, x)
    fig, ax = _figure()
    drawn = False
    numeric = x is not None and all(
        isinstance(p.swept.get(x), int | float) for p in report.points if x in p.swept
    )
    cats: list[str] = []
    ticks: set[float] = set()
    for name, points in series.items():
        pts = [(p.swept.get(x) if x else _point(report, p), p.stats[metric]) for p in points]
        pts = [(xv, s) for xv, s in pts if xv is not None and s.mean is not None]
        if not pts:
            continue
        if numeric:
            pts.sort(key=lambda t: cast(float, t[0]))
            xs: list[Any] = [float(cast(float, t[0])) for t in pts]
            ticks.update(xs)
        else:
            for xv, _ in pts:
                if str(xv) not in cats:
                    cats.append(str(xv))
            xs = [cats.index(str(t[0])) for t in pts]
        ys = [s.mean for _, s in pts]
        ax.errorbar(xs, ys, yerr=errors([s for _, s in pts]), marker="o", capsize=4, label=name)
        drawn = True
    if not drawn:
        return None
    if not numeric:
        ax.set_xticks(range(len(cats)), cats, rotation=20, ha="right")
    elif len(ticks) <= 12:  # the swept values themselves, not matplotlib's guesses
        ax.set_xticks(sorted(ticks), [num(t) for t in sorted(ticks)])
    ax.set_xlabel(x or "study point")
    ax.set_ylabel(f"{label} ({unit})")
    ax.set_title(f"{label} vs {x or 'study point'} (mean, 95% interval across cycles)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def _tradeoff(report: Report, path: Path) -> Path | None:
    with_ttft = [p for p in report.points if p.stats["ttft_ms_mean"].mean is not None]
    xmetric = "ttft_ms_mean" if with_ttft else "throughput_tokens_per_s"
    fig, ax = _figure()
    drawn = False
    for who in sorted({_who(report, p) for p in report.points}):
        pts = [
            p for p in report.points
            if _who(report, p) == who
            and p.stats[xmetric].mean is not None
            and p.stats["energy_per_output_token_j"].mean is not None
        ]  # fmt: skip
        if not pts:
            continue
        ax.errorbar(
            [p.stats[xmetric].mean for p in pts],
            [p.stats["energy_per_output_token_j"].mean for p in pts],
            xerr=errors([p.stats[xmetric] for p in pts]),
            yerr=errors([p.stats["energy_per_output_token_j"] for p in pts]),
            fmt="o",
            capsize=3,
            label=who,
        )
        for p in pts:
            text = ", ".join(f"{k}={v}" for k, v in p.swept.items())
            ax.annotate(text, (p.stats[xmetric].mean, p.stats["energy_per_output_token_j"].mean),
                        fontsize="x-small", xytext=(4, 4), textcoords="offset points")  # fmt: skip
        drawn = True
    if not drawn:
        return None
    xl, xu = METRICS[xmetric]
    ax.set_xlabel(f"{xl} ({xu})")
    ax.set_ylabel("J/token (J)")
    ax.set_title(f"Energy–latency trade-off: J/token vs {xl}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def power_figure(run_dir: Path, name: str) -> tuple[Any, str | None]:
    """One run's power figure, not yet saved (the Figure, or None and why). With the engine's
    load (report/timeline.py) a second panel below shows it on the same clock."""
    import json

    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(RunDir(run_dir).timeseries).to_pylist()
        result = json.loads(RunDir(run_dir).result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{name}: {exc}"
    rows = [r for r in rows if r.get("power_w") is not None]
    if not rows:
        reason = (result.get("energy") or {}).get("unavailable_reason") or "no power samples"
        return None, f"{name} has no power samples ({reason})"
    load = timeline.read_load(run_dir, result)
    if load is None:
        fig, ax = _figure()
        below = ax
    else:
        fig, ax, below = _two_panels()
    by_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        by_gpu[int(r["gpu_index"])].append((r["t_s"], r["power_w"]))
    for gpu, pts in sorted(by_gpu.items()):
        ax.plot([t for t, _ in pts], [w for _, w in pts], label=f"GPU {gpu}", linewidth=1)
    ts = result.get("timeseries") or {}
    start, end = ts.get("window_start_s"), ts.get("window_end_s")
    if start is not None and end is not None:
        ax.axvspan(start, end, alpha=0.2, color="tab:green", label="measurement window")
    if load is not None:
        if start is not None and end is not None:
            below.axvspan(start, end, alpha=0.2, color="tab:green")
        span = (start, end) if start is not None and end is not None else (
            min(r["t_s"] for r in rows), max(r["t_s"] for r in rows))  # fmt: skip
        right = timeline.draw_load(below, load, span)
        if right is not None:
            _ticks(right)
    below.set_xlabel("time since the meter started (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"GPU power, run {name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig, None


def _power_timeline(run_dir: Path, path: Path, name: str) -> tuple[Path | None, str | None]:
    fig, problem = power_figure(run_dir, name)
    return (None, problem) if fig is None else (_save(fig, path), None)


def _phase_split(report: Report, path: Path) -> Path | None:
    pre, dec = "prefill_energy_per_token_j", "decode_energy_per_token_j"
    pts = [
        p for p in report.points if p.stats[pre].mean is not None and p.stats[dec].mean is not None
    ]
    if not pts:
        return None
    fig, ax = _figure()
    xs = list(range(len(pts)))
    for offset, metric, label in ((-0.2, pre, "prefill, per input token"),
                                  (0.2, dec, "decode, per output token")):  # fmt: skip
        ax.bar([x + offset for x in xs], [p.stats[metric].mean for p in pts], width=0.4,
               yerr=errors([p.stats[metric] for p in pts]), capsize=3, label=label)  # fmt: skip
    ax.set_xticks(xs, [_point(report, p) for p in pts], rotation=30, ha="right",
                  fontsize="x-small")  # fmt: skip
    ax.set_ylabel("J/token (J)")
    ax.set_title("Energy per token by phase")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return _save(fig, path)


def draw(report: Report, out: Path, *, x: str | None = None, run: str | None = None) -> Figures:
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures()
    x = choose_x(report, x)
    reason = next((p.energy_reason for p in report.points if p.energy_reason), None)
    no_energy = f"no run measured energy ({reason or 'see the runs'})"
    for name, metric in (
        ("energy_per_token.png", "energy_per_output_token_j"),
        ("throughput.png", "throughput_tokens_per_s"),
    ):
        path = _line_plot(report, metric, x, out / name)
        if path is None:
            why = no_energy if metric.startswith("energy") else "no run completed"
            figs.skipped[name] = why
        else:
            figs.written[name] = path
    path = _phase_split(report, out / "phase_split.png")
    if path is None:
        figs.skipped["phase_split.png"] = (
            f"no run measured both phases' energy ({reason or 'see the runs'})"
        )
    else:
        figs.written["phase_split.png"] = path
    path = _tradeoff(report, out / "tradeoff.png")
    if path is None:
        figs.skipped["tradeoff.png"] = no_energy
    else:
        figs.written["tradeoff.png"] = path
    if any("accuracy" in p.stats and p.stats["accuracy"].mean is not None for p in report.points):
        path = quality.draw(report, out / "quality.png", _figure, _save, _who)
        if path is None:
            figs.skipped["quality.png"] = no_energy
        else:
            figs.written["quality.png"] = path
    if (path := pareto.draw(report, out / "pareto.png", _figure, _save, _who)) is None:
        figs.skipped["pareto.png"] = f"no point has both figures of its front: {no_energy}"
    else:
        figs.written["pareto.png"] = path
    served = [p for p in report.points if serving.is_serving(p)]
    if served:
        path = serving.draw(served, out / "serving.png")
        if path is None:
            figs.skipped["serving.png"] = "no serving point has a finite rate and a figure"
        else:
            figs.written["serving.png"] = path
    runs = [StudyDir(p.study_dir).run(r).path for p in report.points for r in p.run_ids]
    if run is not None:
        chosen = report.find_run(run)
        none = f"run {run} has no result.json"
    else:
        chosen = next((d for d in runs if (d / "result.json").exists()), None)
        none = "no run completed"
    if chosen is None:
        figs.skipped["power_timeline.png"] = none
    else:
        target = out / "power_timeline.png"
        name = f"{chosen.parent.parent.name}/{chosen.name}" if report.comparing else chosen.name
        power, problem = _power_timeline(chosen, target, name)
        if power is None:
            figs.skipped["power_timeline.png"] = problem or "not drawn"
        else:
            figs.written["power_timeline.png"] = power
    return figs
