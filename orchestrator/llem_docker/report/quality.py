"""Answer quality against energy: the quantization gate, `quality.png` and the Pareto
frontier (docs/quality.md).

**The gate.** In a study that sweeps `quantization` and scores quality, each point's accuracy
is set against its reference point's: the point that differs only in `quantization`, set to
`quality.reference` (default `none`). `Point.relative_accuracy` is the ratio of the two means
across cycles; below `quality.min_relative_accuracy` (default 0.99, MLPerf's rule of 99% of
the reference accuracy) the point fails the point-level rule `quality_gate`, and is invalid.
A point without a scored reference point is flagged, not judged.

One marker per study point that was scored and measured energy: J/token (x, the mean across
cycles with its 95% interval) against accuracy (y, the same). A point is on the frontier when
no other point is at least as good on both axes and better on one (lower J/token, higher
accuracy), judged on the means; the frontier is drawn as a step line through its points,
which are ringed. The report names them below the table, so a reader in a terminal sees the
frontier too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llem_docker.report.pareto import front
from llem_docker.report.stats import error_bars as errors
from llem_docker.store.layout import StudyDir

if TYPE_CHECKING:  # points.py applies the gate (`apply_gate`) as it builds a report
    from llem_docker.report.points import Point, Report

X, Y = "energy_per_output_token_j", "accuracy"
GATE_RULE = "quality_gate"
QUANT = "quantization"


def gate_settings(p: Point) -> tuple[str, float] | None:
    """(the reference quantization, the threshold) from the point's first run's config, or
    None when its runs have no `quality:` section."""
    for run_id in p.run_ids:
        try:
            raw = json.loads(StudyDir(p.study_dir).run(run_id).result.read_text(encoding="utf-8"))
            q = raw["config"]["quality"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not isinstance(q, dict):
            return None
        return str(q.get("reference", "none")), float(q.get("min_relative_accuracy", 0.99))
    return None


def _twin(a: Point, b: Point) -> bool:
    """The same point but for its quantization: same study, engine, model and other values."""

    def rest(p: Point) -> dict[str, Any]:
        return {k: v for k, v in p.swept.items() if k != QUANT}

    return (a.study, a.backend, a.model) == (b.study, b.backend, b.model) and rest(a) == rest(b)


def apply_gate(points: Sequence[Point], note: Callable[[Point, str], None]) -> None:
    """Set each gated point's `relative_accuracy`, and fail `quality_gate` (through `note`)
    where it is under the threshold; the reference point itself is at 1."""
    for p in points:
        acc = p.stats[Y].mean if Y in p.stats else None
        if QUANT not in p.swept or acc is None or (gate := gate_settings(p)) is None:
            continue
        reference, threshold = gate
        ref = next((o for o in points if _twin(o, p) and str(o.swept.get(QUANT)) == reference),
                   None)  # fmt: skip
        ref_acc = ref.stats[Y].mean if ref is not None and Y in ref.stats else None
        if not ref_acc:
            p.flags.append(f"no scored reference point ({QUANT}={reference}) to gate accuracy")
            continue
        p.relative_accuracy = acc / ref_acc
        if p.relative_accuracy < threshold:
            p.flags.append(
                f"accuracy {p.relative_accuracy:.1%} of {QUANT}={reference}'s < {threshold:.0%}"
            )
            note(p, GATE_RULE)


def scored(points: Sequence[Point]) -> list[Point]:
    """The points with both a mean accuracy and a mean J/token."""

    def has(p: Point, metric: str) -> bool:
        return metric in p.stats and p.stats[metric].mean is not None

    return [p for p in points if has(p, X) and has(p, Y)]


def frontier(xy: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points on the Pareto frontier of (cost x: lower is better, value y:
    higher is better), in order of x. Ties on both axes are all on it."""
    return front(xy, ("min", "max"))


def on_frontier(points: Sequence[Point]) -> list[Point]:
    pts = scored(points)
    xy = [(float(p.stats[X].mean or 0.0), float(p.stats[Y].mean or 0.0)) for p in pts]
    return [pts[i] for i in frontier(xy)]


def draw(
    report: Report,
    path: Path,
    figure: Callable[[], Any],
    save: Callable[[Any, Path], Path],
    who: Callable[[Report, Point], str],
) -> Path | None:
    """quality.png, or None when no point was both scored and measured (the report's
    figure helpers are passed in: report/plots.py draws with them and imports this)."""
    pts = scored(report.points)
    if not pts:
        return None
    fig, ax = figure()
    for name in sorted({who(report, p) for p in pts}):
        mine = [p for p in pts if who(report, p) == name]
        ax.errorbar(
            [p.stats[X].mean for p in mine], [p.stats[Y].mean for p in mine],
            xerr=errors([p.stats[X] for p in mine]), yerr=errors([p.stats[Y] for p in mine]),
            fmt="o", capsize=3, label=name,
        )  # fmt: skip
        for p in mine:
            text = ", ".join(f"{k}={v}" for k, v in p.swept.items())
            ax.annotate(text, (p.stats[X].mean, p.stats[Y].mean), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
    best = on_frontier(pts)
    fx = [float(p.stats[X].mean or 0.0) for p in best]
    fy = [float(p.stats[Y].mean or 0.0) for p in best]
    ax.step(fx, fy, where="post", color="0.4", linestyle="--", linewidth=1, label="Pareto frontier")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="0.2", linewidths=1.2)
    ax.set_xlabel("J/token (J)")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Answer quality against energy (frontier: lower J/token, higher accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save(fig, path)


def frontier_line(report: Report) -> str | None:
    """A line for under the table naming the frontier's points, or None when fewer than two
    points were scored and measured (a frontier of one says nothing)."""
    if len(scored(report.points)) < 2:
        return None
    best = on_frontier(report.points)
    names = "; ".join(f"{p.study}: {p.label}" if report.comparing else p.label for p in best)
    return f"Pareto frontier (lower J/token, higher accuracy; means across cycles): {names}"
