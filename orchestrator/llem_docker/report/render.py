"""The report as a terminal table, Markdown, HTML (with the figures), JSON or CSV.

The human-readable outputs (report/table.py; the terminal's in report/terminal.py) format
numbers with `report.fmt`, leave out the figures no point has, and add a `study` column only
when several studies are compared; JSON and CSV carry every figure unrounded and always name
the study.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from llem_docker.report import serving
from llem_docker.report.capacity import TITLE as CAPACITY
from llem_docker.report.capacity import capacity_parts
from llem_docker.report.plots import Figures
from llem_docker.report.points import METRICS, Report
from llem_docker.report.stats import Summary
from llem_docker.report.table import (
    METHOD,
    Column,
    heading,
    main_parts,
    rows,
    serving_parts,
    studies,
)
from llem_docker.report.terminal import print_table

__all__ = ["as_csv", "as_json", "html_page", "markdown", "print_table"]


def _md_table(cols: list[Column]) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c.head) for c in cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(esc(x) for x in cells) + " |" for cells in rows(cols)]


def markdown(r: Report, figs: Figures | None) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    cols, notes = main_parts(r)
    lines = [f"# {esc(heading(r))}", ""] + [f"- study {esc(x)}" for x in studies(r)]
    lines += [""] if r.comparing else []
    lines += [METHOD, "", *_md_table(cols)]
    served = [p for p in r.points if serving.is_serving(p)]
    if served:
        scols, slines = serving_parts(served)
        lines += ["", "## Serving", "", *_md_table(scols)]
        lines += [""] + [f"- {esc(x)}" for x in slines]
    ccols, clines = capacity_parts(r)
    if ccols:
        lines += ["", f"## {CAPACITY}", "", *_md_table(ccols)]
        lines += [""] + [f"- {esc(x)}" for x in clines]
    lines += [""] + [f"- {esc(x)}" for x in notes]
    if figs is not None:
        lines += [""] + [f"![{n}]({n})" for n in figs.written]
        lines += [f"- {n} not drawn: {esc(why)}" for n, why in figs.skipped.items()]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(cols: list[Column], flagged: list[bool]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c.head)}</th>" for c in cols)
    body = "".join(
        f"<tr{' class=flag' if flag else ''}>" + "".join(f"<td>{e(x)}</td>" for x in cells)
        + "</tr>"
        for cells, flag in zip(rows(cols), flagged, strict=True)
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(r: Report, figs: Figures | None) -> str:
    e = html.escape
    cols, notes = main_parts(r)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(heading(r))}</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}tr.flag{background:#fff4d6}",
        "figure{display:inline-block;margin:1em}</style></head><body>",
        f"<h1>{e(heading(r))}</h1>",
        "".join(f"<p>study {e(x)}</p>" for x in studies(r)),
        f"<p>{e(METHOD)}</p>",
        _html_table(cols, [bool(p.flags) for p in r.points]),
        _serving_html(r),
        _capacity_html(r),
        "".join(f"<p>{e(x)}</p>" for x in notes),
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
    cols, lines = serving_parts(served)
    notes = "".join(f"<p>{html.escape(x)}</p>" for x in lines)
    return f"<h2>Serving</h2>{_html_table(cols, [False] * len(served))}{notes}"


def _capacity_html(r: Report) -> str:
    cols, lines = capacity_parts(r)
    if not cols:
        return ""
    notes = "".join(f"<p>{html.escape(x)}</p>" for x in lines)
    table = _html_table(cols, [False] * len(cols[0].cells))
    return f"<h2>{html.escape(CAPACITY)}</h2>{table}{notes}"


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
        "searches": [
            {"study": s.label, **x} for s in r.studies for x in s.data.get("searches") or []
        ],
    }
    if figs is not None:
        data["figures"] = {n: str(Path(p)) for n, p in figs.written.items()}
        data["figures_skipped"] = figs.skipped
    return json.dumps(data, indent=2)


STAT_FIELDS = ("mean", "sd", "ci95", "ci_lo", "ci_hi", "ci_method", "n", "cv")


def as_csv(r: Report) -> str:
    """One row per point; per metric `<metric>_mean/_sd/_ci95/_ci_lo/_ci_hi/_ci_method/_n/_cv`,
    unrounded; empty where not measured (the reason is in energy_unavailable_reason).
    `_ci_lo`–`_ci_hi` is the interval the tables and figures show (`_ci_method` `log` or
    `linear`, report/stats.py); `_ci95` stays the linear interval's half-width."""
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
            stats += [s.mean, s.std, s.ci95, s.low, s.high, s.method, s.n, s.cv]
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
