"""`llem-docker report`: statistics per study point, a table, Markdown or HTML, and plots."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from llem_docker.errors import ConfigError
from llem_docker.report.plots import Figures, draw
from llem_docker.report.points import DEFAULT_CV, build_report
from llem_docker.report.render import as_json, html_page, markdown, print_table

out = Console(soft_wrap=False)
FORMATS = ("table", "md", "html", "json")


def report(
    results_dir: Path = typer.Argument(..., help="a study's results folder"),
    fmt: str = typer.Option("table", "--format", help="table | md | html | json"),
    out_dir: Path | None = typer.Option(
        None, "--out", help="where report.md/.html and the PNGs go (default RESULTS_DIR/report)"
    ),
    x: str | None = typer.Option(None, "--x", help="swept key for the x axis of the plots"),
    run: str | None = typer.Option(None, "--run", help="run id for the power timeline"),
    cv_threshold: float = typer.Option(
        DEFAULT_CV, "--cv-threshold", min=0.0, help="flag points whose CV exceeds this"
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="draw the PNG figures"),
) -> None:
    """Mean, sd and 95% CI across cycles per study point; plots; Markdown or HTML."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown format `{fmt}`", source="--format", fix=f"use one of {', '.join(FORMATS)}"
        )
    r = build_report(results_dir, cv_threshold=cv_threshold)
    if x is not None and x not in r.swept_keys:
        raise ConfigError(
            f"`{x}` is not a swept key of this study",
            source="--x",
            fix=f"use one of {', '.join(r.swept_keys) or '(none: the study sweeps nothing)'}",
        )
    if run is not None and not (results_dir / "runs" / run / "result.json").is_file():
        raise ConfigError(
            f"run `{run}` has no result.json in {results_dir / 'runs'}",
            source="--run",
            fix="give the id of a completed run (see `llem-docker status`)",
        )
    target = out_dir or results_dir / "report"
    figs: Figures | None = None
    writes_files = fmt in ("md", "html") or out_dir is not None
    if plots and writes_files:
        figs = draw(r, target, x=x, run=run)
    if fmt == "table":
        print_table(out, r)
    elif fmt == "json":
        print(as_json(r, figs))
    else:
        target.mkdir(parents=True, exist_ok=True)
        page = target / f"report.{fmt}"
        page.write_text(markdown(r, figs) if fmt == "md" else html_page(r, figs), "utf-8")
        out.print(f"wrote {escape(str(page))}", highlight=False)
    if figs is not None and fmt != "json":
        for name, path in figs.written.items():
            out.print(f"figure {escape(name)}: {escape(str(path))}", highlight=False)
        for name, why in figs.skipped.items():
            out.print(f"[dim]{escape(name)} not drawn: {escape(why)}[/dim]", highlight=False)
