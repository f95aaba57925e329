"""A study comparison (review/compare.py) as a terminal table, Markdown, HTML, JSON or CSV.

One row per point and figure: A's and B's means, B/A − 1 in % with its 95% interval, and the
verdict at the margin. The terminal shows the means alone and fits its width
(report/terminal.py); Markdown and HTML add each side's 95% interval and both p values; the
HTML page is self-contained, with a figure of every relative difference and its interval
against the shaded margin. JSON and CSV carry every number unrounded. Numbers are formatted
by `report.fmt`, as in the report.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import asdict, fields
from typing import Any

from rich.console import Console
from rich.markup import escape

from llem_docker.report.fmt import NA, bounds, num
from llem_docker.report.table import Column, rows
from llem_docker.report.terminal import print_columns
from llem_docker.review.compare import (
    OneSided,
    PointPair,
    StudyComparison,
    metric_label,
    metric_unit,
)
from llem_docker.review.equivalence import TOO_FEW, Comparison, margin_text

__all__ = ["as_csv", "as_json", "draw_figure", "html_page", "markdown", "print_comparison"]

METHOD = (
    "B/A − 1 is the ratio of B's and A's geometric means, less 1, with its 95% interval "
    "(Welch's t on ln x, back-transformed). equivalent: the 90% interval lies inside the "
    "margin (two one-sided tests, α = 0.05); different: the 95% interval excludes 0 (or the "
    "90% interval lies beyond the margin) and equivalence is not shown; inconclusive: neither; "
    "n≈k: the cycles per side that would decide it, at the spread and difference observed. A "
    "figure with a value ≤ 0 is compared on the linear scale. docs/reproduce.md explains."
)
STYLE = {"different": "red", "inconclusive": "yellow"}
COLOURS = {"equivalent": "tab:green", "different": "tab:red", "inconclusive": "tab:grey"}


def verdict_text(c: Comparison) -> str:
    """`equivalent`, `different`, `inconclusive (n≈17)` (the cycles per side that would
    decide it), `not measured in B`."""
    if not (c.n_a and c.n_b):
        return c.reason
    if c.verdict != "inconclusive":
        return c.verdict
    if c.reason == TOO_FEW:
        return "inconclusive (< 2 cycles)"
    return f"inconclusive (n≈{c.cycles_needed})" if c.cycles_needed else "inconclusive"


def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100


def rel_cell(c: Comparison) -> str:
    """B/A − 1 in % with its 95% interval: `-3.3 [-4.1, -2.6]`."""
    return bounds(_pct(c.rel_diff), _pct(c.rel_low), _pct(c.rel_high))


def _side(mean: float | None, low: float | None, high: float | None, n: int, full: bool) -> str:
    if mean is None:
        return NA
    return f"{bounds(mean, low, high)} (n={n})" if full else num(mean)


def _figure(c: Comparison) -> str:
    """The figure's name, with its unit unless the name says it (J/token, tokens/s)."""
    label, unit = metric_label(c.metric), metric_unit(c.metric)
    said = not unit or label.startswith(f"{unit}/") or label.endswith("/s")
    return label if said else f"{label} ({unit})"


def columns(sc: StudyComparison, *, full: bool) -> tuple[list[Column], list[str | None]]:
    """The table's columns and each row's style (by verdict). `full`: each side's interval
    and n, and both p values; else the point is named on its first row only."""
    items = [(p, c) for p in sc.pairs for c in p.results]
    first = [k == 0 or items[k - 1][0] is not p for k, (p, _) in enumerate(items)]
    head_rel = "B/A − 1 (%) [95%]"
    names = [p.label if full or f else "" for (p, _), f in zip(items, first, strict=True)]
    side_a = [_side(c.mean_a, c.low_a, c.high_a, c.n_a, full) for _, c in items]
    side_b = [_side(c.mean_b, c.low_b, c.high_b, c.n_b, full) for _, c in items]
    cols = [
        Column("point", names, identity=True),
        Column("figure", [_figure(c) for _, c in items], identity=True),
        Column("A", side_a, numeric=True),
        Column("B", side_b, numeric=True),
        Column(head_rel, [rel_cell(c) for _, c in items], numeric=True),
    ]
    if full:
        cols += [
            Column("TOST p", [num(c.p_equivalence, 2) for _, c in items], numeric=True),
            Column("Welch p", [num(c.p_difference, 2) for _, c in items], numeric=True),
        ]
    cols.append(Column(f"verdict ({margin_text(sc.margin)})", [verdict_text(c) for _, c in items]))
    return cols, [STYLE.get(c.verdict) for _, c in items]


def _one_sided(sc: StudyComparison) -> list[str]:
    def line(side: str, p: OneSided) -> str:
        return f"only in {side}: {p.label} ({p.completed} completed cycles, {p.config_hash[:12]})"

    return [line("A", p) for p in sc.only_a] + [line("B", p) for p in sc.only_b]


def _sides(sc: StudyComparison) -> list[str]:
    return [f"A = {sc.a.label} ({sc.a.dir})", f"B = {sc.b.label} ({sc.b.dir})"]


def print_comparison(console: Console, sc: StudyComparison) -> None:
    console.print(f"[bold]{escape(sc.summary())}[/bold]", highlight=False)
    for line in _sides(sc):
        console.print(escape(line), highlight=False)
    if sc.pairs:
        cols, styles = columns(sc, full=False)
        print_columns(console, "B against A, per point", cols, styles)
    for line in [*_one_sided(sc), *sc.notes]:
        console.print(escape(line), highlight=False)
    console.print(f"[dim]{escape(METHOD)} (--format md or html adds the intervals.)[/dim]")
    for line in sc.env_lines:
        console.print(escape(line), highlight=False)


def _md_table(cols: list[Column]) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c.head) for c in cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows(cols)]


def markdown(sc: StudyComparison) -> str:
    lines = [f"# {sc.b.label} against {sc.a.label}", "", sc.summary(), ""]
    lines += [f"- {x}" for x in _sides(sc)] + ["", METHOD, ""]
    if sc.pairs:
        lines += [*_md_table(columns(sc, full=True)[0]), ""]
    lines += [f"- {x}" for x in [*_one_sided(sc), *sc.notes]]
    if sc.env_lines:
        lines += ["", "## Environment", ""] + [f"- {x}" for x in sc.env_lines]
    return "\n".join(lines).rstrip() + "\n"


def html_page(sc: StudyComparison) -> str:
    e = html.escape
    title = f"{sc.b.label} against {sc.a.label}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}",
        "tr.different{background:#fde2e2}tr.inconclusive{background:#fff4d6}</style>",
        f"</head><body><h1>{e(title)}</h1><p><b>{e(sc.summary())}</b></p>",
        "".join(f"<p>{e(x)}</p>" for x in _sides(sc)),
        f"<p>{e(METHOD)}</p>",
    ]
    if sc.pairs:
        cols, _ = columns(sc, full=True)
        verdicts = [c.verdict for p in sc.pairs for c in p.results]
        head = "".join(f"<th>{e(c.head)}</th>" for c in cols)
        body = "".join(
            f"<tr class={v}>" + "".join(f"<td>{e(x)}</td>" for x in row) + "</tr>"
            for v, row in zip(verdicts, rows(cols), strict=True)
        )
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    png = draw_figure(sc)
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='B/A − 1 per point'>"
                     "<figcaption>B/A − 1 per point with its 95% interval; the shaded band is "
                     f"the margin, {e(margin_text(sc.margin))}</figcaption></figure>")  # fmt: skip
    parts += [f"<p>{e(x)}</p>" for x in [*_one_sided(sc), *sc.notes]]
    if sc.env_lines:
        parts += ["<h2>Environment</h2><ul>", *[f"<li>{e(x)}</li>" for x in sc.env_lines]]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _panel(ax: Any, sc: StudyComparison, metric: str) -> None:
    """One figure's relative differences, one row per point (the first at the top)."""
    m = sc.margin * 100
    ax.axvspan(-m, m, color="tab:blue", alpha=0.12, linewidth=0)
    ax.axvline(0, color="black", linewidth=0.8)
    for y, p in enumerate(sc.pairs):
        c = p.result(metric)
        if c is None or c.rel_diff is None:
            continue
        x, colour = c.rel_diff * 100, COLOURS[c.verdict]
        if c.rel_low is None or c.rel_high is None:
            ax.plot([x], [y], "o", mfc="none", color=colour)
            continue
        err = [[max(0.0, x - c.rel_low * 100)], [max(0.0, c.rel_high * 100 - x)]]
        ax.errorbar([x], [y], xerr=err, fmt="o", color=colour, capsize=3)
    ax.set_title(metric_label(metric), fontsize="medium")
    ax.set_xlabel("B/A − 1 (%)")
    ax.grid(axis="x", alpha=0.3)


def draw_figure(sc: StudyComparison) -> bytes | None:
    """A PNG: one panel per figure, B/A − 1 of each point with its 95% interval, coloured by
    verdict, the ±margin band shaded. None when no point is on both sides."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    metrics = list(dict.fromkeys(c.metric for p in sc.pairs for c in p.results))
    if not metrics:
        return None
    width = min(3.6 * len(metrics) + 2.4, 16.0)
    fig = Figure(figsize=(width, 1.6 + 0.4 * len(sc.pairs)), dpi=100)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        _panel(ax, sc, metric)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: num(v)))
    axes[0].set_yticks(range(len(sc.pairs)), [p.label for p in sc.pairs])
    axes[0].set_ylim(len(sc.pairs) - 0.5, -0.5)
    keys = [Line2D([], [], marker="o", color=c, label=v) for v, c in COLOURS.items()]
    fig.legend(handles=keys, loc="upper right", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _pair_json(p: PointPair) -> dict[str, Any]:
    return {
        "config_hash": p.config_hash, "point": p.label, "backend": p.backend,
        "swept": p.swept, "serving": p.serving,
        "comparisons": [asdict(c) | {"label": metric_label(c.metric)} for c in p.results],
    }  # fmt: skip


def as_json(sc: StudyComparison) -> str:
    return json.dumps(
        {
            "a": {"study": sc.a.label, "study_dir": str(sc.a.dir)},
            "b": {"study": sc.b.label, "study_dir": str(sc.b.dir)},
            "margin": sc.margin,
            "headline": sc.headline,
            "summary": sc.summary(),
            "counts": dict(sc.counts()),
            "points": [_pair_json(p) for p in sc.pairs],
            "only_a": [asdict(p) for p in sc.only_a],
            "only_b": [asdict(p) for p in sc.only_b],
            "notes": sc.notes,
            "environment": sc.env_lines,
        },
        indent=2,
    )


FIELDS = [f.name for f in fields(Comparison)]


def as_csv(sc: StudyComparison) -> str:
    """One row per point and figure (`present` both), and one per point on one side only
    (`present` A or B, no figures); numbers unrounded, empty where there is none."""
    head = ["present", "config_hash", "point", "backend", "swept", "label", *FIELDS]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(head)
    for p in sc.pairs:
        swept = json.dumps(p.swept, sort_keys=True)
        for c in p.results:
            values = [getattr(c, f) for f in FIELDS]
            cells = ["" if v is None else repr(v) if isinstance(v, float) else v for v in values]
            out.writerow(["both", p.config_hash, p.label, p.backend, swept,
                          metric_label(c.metric), *cells])  # fmt: skip
    for side, pts in (("A", sc.only_a), ("B", sc.only_b)):
        for q in pts:
            swept = json.dumps(q.swept, sort_keys=True)
            out.writerow(
                [side, q.config_hash, q.label, q.backend, swept, *[""] * (1 + len(FIELDS))]
            )
    return buf.getvalue()
