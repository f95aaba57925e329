"""`llem-docker report`: statistics per study point, a table, Markdown, HTML, JSON or CSV,
and plots; for one study or several compared side by side."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from llem_docker.errors import ConfigError
from llem_docker.report import best as picker
from llem_docker.report.plots import Figures, draw
from llem_docker.report.points import Report, build_report, build_reports
from llem_docker.report.render import as_csv, as_json, html_page, markdown, print_table
from llem_docker.store.layout import StudyDir

out = Console(soft_wrap=False)


class Format(StrEnum):
    """--format: `table`, `json` and (without --out) `csv` print; `md`, `html` and (with
    --out) `csv` write report.<format>."""

    table = "table"
    md = "md"
    html = "html"
    json = "json"
    csv = "csv"


def _check(r: Report, dirs: list[Path], fmt: Format, out_dir: Path | None, x: str | None,
           run: str | None) -> None:  # fmt: skip
    if x is not None and x not in r.swept_keys:
        raise ConfigError(
            f"`{x}` is not a swept key of {'these studies' if r.comparing else 'this study'}",
            source="--x",
            fix=f"use one of {', '.join(r.swept_keys) or '(none: the study sweeps nothing)'}",
        )
    if run is not None and r.find_run(run) is None:
        where = " or ".join(str(StudyDir(d).runs) for d in dirs)
        raise ConfigError(
            f"run `{run}` has no result.json in {where}",
            source="--run",
            fix="give the id of a completed run (see `llem-docker status`)",
        )
    if r.comparing and out_dir is None and fmt in (Format.md, Format.html):
        raise ConfigError(
            f"--format {fmt.value} of several studies needs a folder to write into",
            source="--out",
            fix="add --out DIR (one study's report goes to RESULTS_DIR/report by default)",
        )


def _validity(r: Report, fmt: Format) -> None:
    """--validity: the rules × points table, printed in the format asked for."""
    from llem_docker.report.validity import print_validity, validity_json, validity_markdown

    if fmt is Format.table:
        print_validity(out, r)
    elif fmt is Format.json:
        print(json.dumps(validity_json(r), indent=2))
    elif fmt is Format.md:
        print(validity_markdown(r), end="")
    else:
        raise ConfigError(
            f"--validity has no --format {fmt.value}",
            source="--format",
            fix="use table, md or json",
        )


def _pick(r: Report, constraints: list[picker.Constraint], by: str | None) -> picker.Pick:
    metric, maximise = picker.parse_by(by, r.points)
    samples = picker.load_samples(r.points)
    return picker.pick(r.points, constraints, metric, samples, maximise=maximise)


def _parse_best(best: str | None, by: str | None, fmt: Format) -> list[picker.Constraint] | None:
    """--best's constraints (None when neither --best nor --by is given), checked before the
    report is built."""
    if best is None and by is None:
        return None
    if fmt not in (Format.table, Format.md, Format.json):
        raise ConfigError(
            f"--best has no --format {fmt.value}", source="--format", fix="use table, md or json"
        )
    picker.parse_by(by, [])
    return picker.parse_best(best or "")


def report(
    results_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RESULTS_DIR",
        help="a study's results folder; several to compare them",
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="the output format"),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="where report.md/.html/.csv and the PNGs go (default RESULTS_DIR/report)",
    ),
    x: str | None = typer.Option(None, "--x", help="swept key for the x axis of the plots"),
    run: str | None = typer.Option(None, "--run", help="run id for the power timeline"),
    cv_threshold: float | None = typer.Option(
        None,
        "--cv-threshold",
        min=0.0,
        help="flag points whose CV exceeds this (default: the study profile's bound, 5%)",
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="draw the PNG figures"),
    validity: bool = typer.Option(
        False,
        "--validity",
        help="the rules × points table, with the fix for each failure (docs/validity.md); "
        "--format table, md or json",
    ),
    best: str | None = typer.Option(
        None,
        "--best",
        help='constraints on the means, e.g. "ttft_ms_p99<=500,tpot_ms_p99<=50": the point '
        "that meets them with the best --by, and the runners-up not significantly worse",
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="the figure --best minimises (max:COLUMN maximises); default J/request for "
        "serving points, else J/token",
    ),
) -> None:
    """Mean, sd and 95% interval across cycles per study point; plots; Markdown, HTML, JSON
    or CSV. The interval is on the log scale for figures that cannot be negative, so it never
    crosses zero. The table fits the terminal's width.

    Several RESULTS_DIRs compare side by side, a `study` column naming each point's study."""
    constraints = _parse_best(best, by, fmt)
    if len(results_dirs) == 1:
        r = build_report(results_dirs[0], cv_threshold=cv_threshold)
    else:
        r = build_reports(results_dirs, cv_threshold=cv_threshold)
    _check(r, results_dirs, fmt, out_dir, x, run)
    if validity:
        _validity(r, fmt)
        return
    chosen = None if constraints is None else _pick(r, constraints, by)
    target = out_dir or results_dirs[0] / "report"
    figs: Figures | None = None
    to_file = fmt in (Format.md, Format.html) or (fmt is Format.csv and out_dir is not None)
    if plots and (to_file or out_dir is not None):
        figs = draw(r, target, x=x, run=run)
    if fmt is Format.table:
        print_table(out, r)
        for line in [] if chosen is None else picker.lines(chosen, comparing=r.comparing):
            out.print(escape(line), highlight=False)
    elif fmt is Format.json:
        data = json.loads(as_json(r, figs))
        print(
            json.dumps(
                data | ({} if chosen is None else {"best": picker.as_dict(chosen)}), indent=2
            )
        )
    elif not to_file:  # csv to stdout
        print(as_csv(r), end="")
    else:
        target.mkdir(parents=True, exist_ok=True)
        page = target / f"report.{fmt.value}"
        pages = {Format.md: markdown, Format.html: html_page}
        text = as_csv(r) if fmt is Format.csv else pages[fmt](r, figs)
        text += "" if chosen is None else picker.markdown(chosen, comparing=r.comparing)
        page.write_text(text, "utf-8")
        out.print(f"wrote {escape(str(page))}", highlight=False)
    if figs is not None and fmt is not Format.json:
        for name, path in figs.written.items():
            out.print(f"figure {escape(name)}: {escape(str(path))}", highlight=False)
        for name, why in figs.skipped.items():
            out.print(f"[dim]{escape(name)} not drawn: {escape(why)}[/dim]", highlight=False)
