"""The report as a terminal table, Markdown, HTML (with the figures), or JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.report.plots import Figures
from llem_docker.report.points import METRICS, Point, Report
from llem_docker.report.stats import Summary

COLUMNS = ["point", "runs", *[f"{lbl} ({unit})" for lbl, unit in METRICS.values()], "flags"]
METHOD = (
    "Each cell is the mean over a point's completed runs ± the half-width of the 95% "
    "confidence interval (Student's t, n−1 degrees of freedom); sd is the sample standard "
    "deviation. n/a: not measured (the reason is given below) or no completed run."
)


def cell(s: Summary, *, full: bool = True) -> str:
    """`mean ± ci95 (sd …, n=…)`; the terminal table leaves out the parenthesis."""
    if s.mean is None:
        return "n/a"
    if s.ci95 is None or s.std is None:
        return f"{s.mean:.4g}" + (f" (n={s.n})" if full else "")
    return f"{s.mean:.4g} ± {s.ci95:.2g}" + (f" (sd {s.std:.2g}, n={s.n})" if full else "")


def row(p: Point, *, full: bool = True) -> list[str]:
    return [
        p.label,
        f"{p.completed}/{p.runs}",
        *[cell(p.stats[m], full=full) for m in METRICS],
        "; ".join(p.flags),
    ]


def _heading(r: Report) -> str:
    s = r.study
    return (
        f"{s.get('study_name', r.study_dir.name)}: {s.get('state', '?')}, "
        f"design {str(s.get('design_hash', ''))[:12]}, {len(r.points)} points"
    )


def _reasons(r: Report) -> list[str]:
    return sorted({f"{p.backend}: {p.energy_reason}" for p in r.points if p.energy_reason})


def print_table(console: Console, r: Report) -> None:
    table = Table(title=_heading(r), title_justify="left")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for p in r.points:
        flagged = bool(p.flags)
        cells = row(p, full=False)
        table.add_row(*[escape(c) for c in cells], style="yellow" if flagged else None)
    console.print(table)
    console.print(f"[dim]{escape(METHOD)} (--format md or html adds sd and n.)[/dim]")
    for reason in _reasons(r):
        console.print(f"energy not measured: {escape(reason)}", highlight=False)


def markdown(r: Report, figs: Figures | None) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# {esc(_heading(r))}", "", METHOD, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in row(p)) + " |" for p in r.points]
    lines += [""] + [f"- energy not measured: {esc(x)}" for x in _reasons(r)]
    if figs is not None:
        lines += [""] + [f"![{n}]({n})" for n in figs.written]
        lines += [f"- {n} not drawn: {esc(why)}" for n, why in figs.skipped.items()]
    return "\n".join(lines).rstrip() + "\n"


def html_page(r: Report, figs: Figures | None) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = "".join(
        f"<tr{' class=flag' if p.flags else ''}>" + "".join(f"<td>{e(c)}</td>" for c in row(p))
        + "</tr>"
        for p in r.points
    )  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(_heading(r))}</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}tr.flag{background:#fff4d6}",
        "figure{display:inline-block;margin:1em}</style></head><body>",
        f"<h1>{e(_heading(r))}</h1><p>{e(METHOD)}</p>",
        f"<table><tr>{head}</tr>{body}</table>",
        "".join(f"<p>energy not measured: {e(x)}</p>" for x in _reasons(r)),
    ]
    if figs is not None:
        parts += [
            f"<figure><img src='{e(n)}' alt='{e(n)}' width='800' height='500'>"
            f"<figcaption>{e(n)}</figcaption></figure>"
            for n in figs.written
        ]
        parts += [f"<p>{e(n)} not drawn: {e(why)}</p>" for n, why in figs.skipped.items()]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def as_json(r: Report, figs: Figures | None) -> str:
    data: dict[str, Any] = {
        "study_dir": str(r.study_dir),
        "study_name": r.study.get("study_name"),
        "cv_threshold": r.cv_threshold,
        "swept_keys": r.swept_keys,
        "points": [p.as_dict() for p in r.points],
    }
    if figs is not None:
        data["figures"] = {n: str(Path(p)) for n, p in figs.written.items()}
        data["figures_skipped"] = figs.skipped
    return json.dumps(data, indent=2)
