"""The report's tables as columns, shared by the terminal, Markdown and HTML: the cells, the
columns that no point has a value for (left out, with their reasons listed once), and the
footnote that says how the intervals are computed.

A cell is `mean [low, high]`, the 95% interval in brackets (report/stats.py); Markdown and
HTML add `(sd …, n=…)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llem_docker.report import pareto, quality, serving
from llem_docker.report.fmt import NA, bounds, num, spread
from llem_docker.report.points import METRICS, QUALITY_METRICS, Point, Report
from llem_docker.report.stats import Summary
from llem_docker.store.manifest import ThermalGaps, first_start_gaps

METHOD = (
    "Each cell is the mean over a point's completed runs with its 95% interval [low, high]. "
    "For figures that cannot be negative (energy, J/token, throughput, latency, durations) the "
    "interval is on the log scale (geometric): Student's t on ln x, n−1 d.f., back-transformed, "
    "so it stays above zero and reaches further above the mean than below. SLO attainment, "
    "goodput, failed requests and accuracy (which can be 0) use Student's t on x: "
    "mean ± t·sd/√n, clipped to [0, 1] for the fractions (attainment, accuracy). sd is "
    "the sample standard deviation. n/a: not measured (the reason is given below) or no "
    "completed run."
)
WARNINGS_NOTE = (
    "warnings ×n: the number of the point's runs that gave that warning (result.json has its "
    "full text)."
)
ENERGY = "energy_per_output_token_j"


@dataclass
class Column:
    head: str
    cells: list[str]  # one per row
    metric: str | None = None  # the figure behind it, for the reason it is empty
    identity: bool = False  # names the row: repeated when a table is split
    numeric: bool = False  # a figure: its cells are not wrapped


def cell(s: Summary, *, full: bool = True) -> str:
    """`mean [low, high] (sd …, n=…)`; the terminal table leaves out the parenthesis."""
    if s.mean is None:
        return NA
    if s.low is None or s.std is None:
        return num(s.mean) + (f" (n={s.n})" if full else "")
    text = bounds(s.mean, s.low, s.high)
    return text + (f" (sd {spread(s.std, s.mean)}, n={s.n})" if full else "")


def _metric(m: str, cells: list[str]) -> Column:
    label, unit = METRICS.get(m) or serving.SERVING_METRICS[m]
    return Column(f"{label} ({unit})", cells, metric=m, numeric=True)


def main_columns(r: Report, *, full: bool = True) -> list[Column]:
    """Every column of the main table, all-n/a ones included (`drop_empty` takes them out)."""
    pts = r.points
    cols = [Column("study", [p.study for p in pts], identity=True)] if r.comparing else []
    cols.append(Column("point", [p.label for p in pts], identity=True))
    cols.append(Column("runs", [f"{p.completed}/{p.runs}" for p in pts], numeric=True))
    cols.append(Column("validity", [p.verdict for p in pts]))
    # quality's columns only where a point was scored: a study without `quality:` shows none
    scored = any(p.stats["accuracy"].n for p in pts)
    shown = [m for m in METRICS if scored or m not in QUALITY_METRICS]
    cols += [_metric(m, [cell(p.stats[m], full=full) for p in pts]) for m in shown]
    if any(p.relative_accuracy is not None for p in pts):  # the quantization gate's ratio
        ratios = [NA if p.relative_accuracy is None else f"{p.relative_accuracy:.1%}" for p in pts]
        cols.append(Column("accuracy vs reference", ratios, numeric=True))
    cols.append(Column("flags", ["; ".join(p.flags) for p in pts]))
    return cols


def serving_columns(points: list[Point], *, full: bool = True) -> list[Column]:
    """The serving table's columns (report/serving.py gives its header and rows)."""
    head, rows = serving.columns(lambda s: cell(s, full=full), points)
    by_col = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in head]
    cols = [Column(head[0], by_col[0], identity=True), Column(head[1], by_col[1], numeric=True)]
    return cols + [_metric(m, c) for m, c in zip(serving.SERVING_METRICS, by_col[2:], strict=True)]


def drop_empty(cols: list[Column]) -> tuple[list[Column], list[Column]]:
    """(kept, dropped): a figure's column is dropped when it is n/a on every row."""
    if not cols or not cols[0].cells:
        return cols, []
    empty = [c.metric is not None and all(x == NA for x in c.cells) for c in cols]
    kept = [c for c, e in zip(cols, empty, strict=True) if not e]
    return kept, [c for c, e in zip(cols, empty, strict=True) if e]


def _why(p: Point, metric: str) -> str:
    if not p.completed:
        return "no run completed"
    return (
        p.reasons.get(metric)
        or (p.energy_reason if "energy" in metric else None)
        or ("no run reported it, nor why")
    )


def missing_lines(dropped: list[Column], points: list[Point]) -> list[str]:
    """One line per reason: the columns left out for it, `J/token, energy, CO2: <reason>`."""
    by_reason: dict[str, list[str]] = {}
    for c in dropped:
        assert c.metric is not None
        reasons = dict.fromkeys(_why(p, c.metric) for p in points)
        by_reason.setdefault("; ".join(reasons), []).append(c.head.rsplit(" (", 1)[0])
    return [f"{', '.join(heads)}: {why}" for why, heads in by_reason.items()]


def fallback_lines(r: Report) -> list[str]:
    """Where a log-scale figure had a value ≤ 0, so its interval is Student's t on x."""
    hits = [
        f"{p.study + ' ' if r.comparing else ''}{p.label}: {_metric(m, []).head}"
        for p in r.points
        for m, s in p.stats.items()
        if s.method == "linear" and m not in serving.LINEAR_METRICS
    ]
    return (
        [f"Student's t on x instead (a value ≤ 0, no logarithm): {', '.join(hits)}"] if hits else []
    )


def energy_lines(r: Report, kept: list[Column]) -> list[str]:
    """Per backend, why energy is missing, where the energy columns are shown."""
    if not any(c.metric == ENERGY for c in kept):
        return []
    who: Callable[[Point], str] = (
        (lambda p: f"{p.study} {p.backend}") if r.comparing else (lambda p: p.backend)
    )
    return sorted({f"{who(p)}: {p.energy_reason}" for p in r.points if p.energy_reason})


def notes(r: Report, kept: list[Column], dropped: list[Column]) -> list[str]:
    """The lines below the main table, after METHOD: what is not shown and why, where the
    interval fell back to the linear one, what the warnings flag counts."""
    lines = [f"not shown, no point has a value: {x}" for x in missing_lines(dropped, r.points)]
    lines += fallback_lines(r)
    lines += gaps_lines(r)
    lines += [WARNINGS_NOTE] if any(p.warnings for p in r.points) else []
    lines += [best] if (best := quality.frontier_line(r)) else []
    lines += pareto.front_lines(r)
    return lines + [f"energy not measured: {x}" for x in energy_lines(r, kept)]


def gaps_lines(r: Report) -> list[str]:
    """The thermal gaps each study's runs were taken with (study.json 1.2, from the
    manifest), or that its first start did not record them (begun before manifest 1.5)."""
    out = []
    for s in r.studies:
        who = f"{s.label}: " if r.comparing else ""
        try:
            starts = [ThermalGaps.model_validate(g) for g in s.data.get("thermal_gaps") or []]
        except ValidationError:
            starts = []
        first, changed = first_start_gaps(starts, str(s.data.get("started_at")))
        if first is None:
            line = (
                f"{who}thermal gaps between runs: not recorded (a study begun before manifest 1.5)"
            )
            later = "; ".join(f"{g.config_s:g} s and {g.cycle_s:g} s" for g in starts)
            out.append(line + (f"; its later starts (--resume): {later}" if later else ""))
            continue
        line = (
            f"{who}thermal gaps between runs: {first.config_s:g} s before another config, "
            f"{first.cycle_s:g} s before a new cycle"
        )
        if changed:
            line += "; a later start (--resume) used others (study.json, thermal_gaps)"
        out.append(line)
    return out


def _describe(data: dict[str, Any], fallback: str) -> str:
    return (
        f"{data.get('study_name', fallback)}: {data.get('state', '?')}, "
        f"design {str(data.get('design_hash', ''))[:12]}"
    )


def heading(r: Report) -> str:
    if not r.comparing:
        return f"{_describe(r.study, r.study_dir.name)}, {len(r.points)} points"
    names = ", ".join(s.label for s in r.studies)
    return f"{len(r.studies)} studies compared ({names}), {len(r.points)} points"


def studies(r: Report) -> list[str]:
    """When comparing: one line per study, its label, state, design hash and folder."""
    if not r.comparing:
        return []
    return [f"{s.label} = {_describe(s.data, s.dir.name)}, folder {s.dir}" for s in r.studies]


def rows(cols: list[Column]) -> list[list[str]]:
    return [list(r) for r in zip(*(c.cells for c in cols), strict=True)] if cols else []


def serving_parts(points: list[Point], *, full: bool = True) -> tuple[list[Column], list[str]]:
    """The serving table's kept columns and the lines for the ones left out."""
    kept, dropped = drop_empty(serving_columns(points, full=full))
    missing = [f"not shown, no point has a value: {x}" for x in missing_lines(dropped, points)]
    return kept, missing + serving.attainment_lines(points)


def main_parts(r: Report, *, full: bool = True) -> tuple[list[Column], list[str]]:
    """The main table's kept columns and the lines that go below it."""
    kept, dropped = drop_empty(main_columns(r, full=full))
    return kept, notes(r, kept, dropped)
