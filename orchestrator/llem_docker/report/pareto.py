"""The energy–latency Pareto front of a report's points: `pareto.png` and the line under the
table that names the front (docs/results.md, "Pareto front and picking a configuration under
constraints").

Each scenario has its own pair of figures, both the means across cycles:

- serving points: J/request of the steady window (`energy_per_request_j`, lower is better)
  against TTFT p99 (`ttft_ms_p99`, lower is better);
- offline points: J/token (`energy_per_output_token_j`, lower is better) against throughput
  (`throughput_tokens_per_s`, higher is better).

A point is on the front when no other point of its scenario is at least as good on both
figures and better on one. Points tied on both figures are all on it. A point that lacks one
of the two figures (no energy on a CPU) is left out. `front` is the general dominance rule,
with a direction per axis; report/quality.py's accuracy frontier uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llem_docker.report.fmt import num
from llem_docker.report.stats import error_bars as errors

if TYPE_CHECKING:  # points.py imports quality.py, which imports this module
    from llem_docker.report.points import Point, Report

Direction = Literal["min", "max"]


def front(values: Sequence[Sequence[float]], directions: Sequence[Direction]) -> list[int]:
    """Indices of the non-dominated rows of `values` (one column per axis, each to minimise or
    maximise as `directions` says), in order of the rows' values. Ties are all kept."""
    sign = [1.0 if d == "min" else -1.0 for d in directions]
    costs = [[s * v for s, v in zip(sign, row, strict=True)] for row in values]

    def dominated(i: int) -> bool:
        mine = costs[i]
        return any(
            all(o <= m for o, m in zip(other, mine, strict=True)) and other != mine
            for j, other in enumerate(costs)
            if j != i
        )

    return sorted(
        (i for i in range(len(values)) if not dominated(i)), key=lambda i: tuple(values[i])
    )


@dataclass(frozen=True)
class Axes:
    """One scenario's front: x and y figures (results.parquet columns) and their directions."""

    scenario: str
    x: str
    x_dir: Direction
    x_label: str
    y: str
    y_dir: Direction
    y_label: str

    @property
    def words(self) -> str:
        def word(d: Direction) -> str:
            return "lower" if d == "min" else "higher"

        return f"{word(self.y_dir)} {self.y_label}, {word(self.x_dir)} {self.x_label}"


SERVING = Axes("serving", "ttft_ms_p99", "min", "TTFT p99 (ms)",
               "energy_per_request_j", "min", "J/request (J)")  # fmt: skip
OFFLINE = Axes("offline", "throughput_tokens_per_s", "max", "tokens/s (tok/s)",
               "energy_per_output_token_j", "min", "J/token (J)")  # fmt: skip


def axes_of(p: Point) -> Axes:
    return SERVING if p.facts.get("scenario") == "serving" else OFFLINE


def _mean(p: Point, metric: str) -> float | None:
    s = p.stats.get(metric)
    return None if s is None or s.mean is None else float(s.mean)


def measured(points: Sequence[Point], axes: Axes) -> list[Point]:
    """The points of the axes' scenario with a mean for both figures."""
    return [
        p for p in points
        if axes_of(p) is axes and _mean(p, axes.x) is not None and _mean(p, axes.y) is not None
    ]  # fmt: skip


def on_front(points: Sequence[Point], axes: Axes) -> list[Point]:
    """The points of the axes' scenario on its Pareto front, in order of x."""
    pts = measured(points, axes)
    xy = [(_mean(p, axes.x) or 0.0, _mean(p, axes.y) or 0.0) for p in pts]
    return [pts[i] for i in front(xy, (axes.x_dir, axes.y_dir))]


def fronts(report: Report) -> dict[str, list[Point]]:
    """Per scenario with a measured point (serving first), the points on its front."""
    return {
        a.scenario: on_front(report.points, a)
        for a in (SERVING, OFFLINE)
        if measured(report.points, a)
    }


def front_lines(report: Report) -> list[str]:
    """Lines for under the table naming each scenario's front, where at least two points have
    both figures (a front of one says nothing)."""
    lines = []
    for a in (SERVING, OFFLINE):
        if len(measured(report.points, a)) < 2:
            continue
        pts = on_front(report.points, a)
        names = "; ".join(f"{p.study}: {p.label}" if report.comparing else p.label for p in pts)
        lines.append(f"Pareto front, {a.scenario} ({a.words}; means across cycles): {names}")
    return lines


def _panel(ax: Any, report: Report, a: Axes, who: Callable[[Report, Point], str]) -> None:
    pts = measured(report.points, a)
    for name in sorted({who(report, p) for p in pts}):
        mine = [p for p in pts if who(report, p) == name]
        ax.errorbar(
            [_mean(p, a.x) for p in mine], [_mean(p, a.y) for p in mine],
            xerr=errors([p.stats[a.x] for p in mine]), yerr=errors([p.stats[a.y] for p in mine]),
            fmt="o", capsize=3, label=name,
        )  # fmt: skip
        for p in mine:
            text = ", ".join(f"{k}={v}" for k, v in p.swept.items())
            ax.annotate(text, (_mean(p, a.x), _mean(p, a.y)), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
    best = on_front(pts, a)
    fx, fy = [_mean(p, a.x) for p in best], [_mean(p, a.y) for p in best]
    where = "post" if a.x_dir == "min" else "pre"  # between two front points, the one to reach
    ax.step(fx, fy, where=where, color="0.4", linestyle="--", linewidth=1, label="Pareto front")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="0.2", linewidths=1.2)
    ax.set_xlabel(a.x_label)
    ax.set_ylabel(a.y_label)
    ax.set_title(f"{a.scenario} points, the front ringed", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def draw(
    report: Report,
    path: Path,
    figure: Callable[[], Any],
    save: Callable[[Any, Path], Path],
    who: Callable[[Report, Point], str],
) -> Path | None:
    """pareto.png, a panel per scenario present (side by side when both are), or None when no
    point has both figures of its scenario (the figure helpers come from report/plots.py)."""
    present = [a for a in (SERVING, OFFLINE) if measured(report.points, a)]
    if not present:
        return None
    fig, ax = figure()
    panels = [ax]
    if len(present) == 2:
        from matplotlib.ticker import FuncFormatter

        fig.clear()
        panels = list(fig.subplots(1, 2))
        for one in panels:
            for axis in (one.xaxis, one.yaxis):
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: num(v)))
    for one, a in zip(panels, present, strict=True):
        _panel(one, report, a, who)
    fig.suptitle("Energy–latency Pareto front (means, 95% intervals across cycles)")
    return save(fig, path)
