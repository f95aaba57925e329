"""The report as a terminal table, Markdown, HTML (with the figures), JSON or CSV.

The human-readable outputs format numbers with `report.fmt` and add a `study` column only when
several studies are compared; JSON and CSV carry unrounded numbers and always name the study.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.report import serving
from llem_docker.report.fmt import interval, num, spread
from llem_docker.report.plots import Figures
from llem_docker.report.points import METRICS, Point, Report
from llem_docker.report.stats import Summary

COLUMNS = [
    "point", "runs", "validity", *[f"{lbl} ({unit})" for lbl, unit in METRICS.values()], "flags"
]  # fmt: skip
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
        return num(s.mean) + (f" (n={s.n})" if full else "")
    return interval(s.mean, s.ci95) + (f" (sd {spread(s.std, s.mean)}, n={s.n})" if full else "")


def columns(r: Report) -> list[str]:
    return ["study", *COLUMNS] if r.comparing else COLUMNS


def row(p: Point, *, full: bool = True, study: bool = False) -> list[str]:
    return [
        *([p.study] if study else []),
        p.label,
        f"{p.completed}/{p.runs}",
        p.verdict,
        *[cell(p.stats[m], full=full) for m in METRICS],
        "; ".join(p.flags),
    ]


def _describe(data: dict[str, Any], fallback: str) -> str:
    return (
        f"{data.get('study_name', fallback)}: {data.get('state', '?')}, "
        f"design {str(data.get('design_hash', ''))[:12]}"
    )


def _heading(r: Report) -> str:
    if not r.comparing:
        return f"{_describe(r.study, r.study_dir.name)}, {len(r.points)} points"
    names = ", ".join(s.label for s in r.studies)
    return f"{len(r.studies)} studies compared ({names}), {len(r.points)} points"


def _studies(r: Report) -> list[str]:
    """When comparing: one line per study, its label, state, design hash and folder."""
    if not r.comparing:
        return []
    return [f"{s.label} = {_describe(s.data, s.dir.name)}, folder {s.dir}" for s in r.studies]


def _reasons(r: Report) -> list[str]:
    who = (lambda p: f"{p.study} {p.backend}") if r.comparing else (lambda p: p.backend)
    return sorted({f"{who(p)}: {p.energy_reason}" for p in r.points if p.energy_reason})


def print_table(console: Console, r: Report) -> None:
    table = Table(title=_heading(r), title_justify="left")
    for col in columns(r):
        table.add_column(col, overflow="fold")
    for p in r.points:
        cells = row(p, full=False, study=r.comparing)
        table.add_row(*[escape(c) for c in cells], style="yellow" if p.flags else None)
    console.print(table)
    served = [p for p in r.points if serving.is_serving(p)]
    if served:
        head, rows = serving.columns(lambda s: cell(s, full=False), served)
        stable = Table(title="Serving (the steady window and the whole run)", title_justify="left")
        for col in head:
            stable.add_column(col, overflow="fold")
        for cells in rows:
            stable.add_row(*[escape(c) for c in cells])
        console.print(stable)
        for line in serving.attainment_lines(served):
            console.print(escape(line), highlight=False)
    for line in _studies(r):
        console.print(f"study {escape(line)}", highlight=False)
    console.print(f"[dim]{escape(METHOD)} (--format md or html adds sd and n.)[/dim]")
    for reason in _reasons(r):
        console.print(f"energy not measured: {escape(reason)}", highlight=False)


def markdown(r: Report, figs: Figures | None) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    cols = columns(r)
    lines = [f"# {esc(_heading(r))}", ""] + [f"- study {esc(x)}" for x in _studies(r)]
    lines += [""] if r.comparing else []
    lines += [METHOD, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(esc(c) for c in row(p, study=r.comparing)) + " |" for p in r.points]
    served = [p for p in r.points if serving.is_serving(p)]
    if served:
        head, rows = serving.columns(cell, served)
        lines += ["", "## Serving", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in rows]
        lines += [""] + [f"- {esc(x)}" for x in serving.attainment_lines(served)]
    lines += [""] + [f"- energy not measured: {esc(x)}" for x in _reasons(r)]
    if figs is not None:
        lines += [""] + [f"![{n}]({n})" for n in figs.written]
        lines += [f"- {n} not drawn: {esc(why)}" for n, why in figs.skipped.items()]
    return "\n".join(lines).rstrip() + "\n"


def html_page(r: Report, figs: Figures | None) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in columns(r))
    body = "".join(
        f"<tr{' class=flag' if p.flags else ''}>"
        + "".join(f"<td>{e(c)}</td>" for c in row(p, study=r.comparing)) + "</tr>"
        for p in r.points
    )  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(_heading(r))}</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}tr.flag{background:#fff4d6}",
        "figure{display:inline-block;margin:1em}</style></head><body>",
        f"<h1>{e(_heading(r))}</h1>",
        "".join(f"<p>study {e(x)}</p>" for x in _studies(r)),
        f"<p>{e(METHOD)}</p>",
        f"<table><tr>{head}</tr>{body}</table>",
        _serving_html(r),
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


def _serving_html(r: Report) -> str:
    served = [p for p in r.points if serving.is_serving(p)]
    if not served:
        return ""
    e = html.escape
    head, rows = serving.columns(cell, served)
    cells = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    notes = "".join(f"<p>{e(x)}</p>" for x in serving.attainment_lines(served))
    heads = "".join(f"<th>{e(c)}</th>" for c in head)
    return f"<h2>Serving</h2><table><tr>{heads}</tr>{cells}</table>{notes}"


def as_json(r: Report, figs: Figures | None) -> str:
    data: dict[str, Any] = {}
    if not r.comparing:  # as before the comparison existed
        data |= {"study_dir": str(r.study_dir), "study_name": r.study.get("study_name")}
    keys = ("study_name", "state", "design_hash")
    data |= {
        "studies": [
            {"study": s.label, "study_dir": str(s.dir), **{k: s.data.get(k) for k in keys}}
            for s in r.studies
        ],
        "cv_threshold": r.cv_threshold,
        "swept_keys": r.swept_keys,
        "points": [p.as_dict() for p in r.points],
    }
    if figs is not None:
        data["figures"] = {n: str(Path(p)) for n, p in figs.written.items()}
        data["figures_skipped"] = figs.skipped
    return json.dumps(data, indent=2)


STAT_FIELDS = ("mean", "sd", "ci95", "n", "cv")


def as_csv(r: Report) -> str:
    """One row per point; per metric `<metric>_mean/_sd/_ci95/_n/_cv`, unrounded; empty where
    not measured (the reason is in energy_unavailable_reason)."""
    head = ["study", "point", "config_hash", "backend", "model"]
    head += [f"swept.{k}" for k in r.swept_keys]
    head += ["runs", "completed", "failed", "runs_with_warnings"]
    metrics = [*METRICS]  # and the serving figures, where the study has serving points
    metrics += [*serving.SERVING_METRICS] if any(map(serving.is_serving, r.points)) else []
    head += [f"{m}_{f}" for m in metrics for f in STAT_FIELDS]
    head += ["flags", "valid", "invalid_rules", "energy_unavailable_reason"]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(head)
    for p in r.points:
        stats = []
        for m in metrics:
            s = p.stats.get(m) or Summary(0, None, None, None, None)
            stats += [s.mean, s.std, s.ci95, s.n, s.cv]
        out.writerow(
            [p.study, p.label, p.config_hash, p.backend, p.model]
            + [_csv_value(p.swept.get(k)) for k in r.swept_keys]
            + [p.runs, p.completed, p.failed, p.with_warnings]
            + ["" if v is None else repr(v) if isinstance(v, float) else v for v in stats]
            + ["; ".join(p.flags), "" if p.valid is None else p.valid]
            + [", ".join(p.invalid_rules), p.energy_reason or ""]
        )
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
