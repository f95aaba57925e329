"""`llem-docker compare A B`: a rerun (B) against the study it reproduces (A), point by point,
with an equivalence verdict per figure (review/compare.py; docs/reproduce.md)."""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from llem_docker.errors import ConfigError
from llem_docker.review.compare import StudyComparison, compare_studies, parse_margin
from llem_docker.review.compare_render import (
    as_csv,
    as_json,
    html_page,
    markdown,
    print_comparison,
)
from llem_docker.store.layout import StudyDir

out = Console(soft_wrap=False)
TEXT_WIDTH = 100  # the terminal format written to a file


class Format(StrEnum):
    """--format: each prints, or with --out is written to a file."""

    terminal = "terminal"
    md = "md"
    html = "html"
    json = "json"
    csv = "csv"


def render(sc: StudyComparison, fmt: Format) -> str:
    """The comparison as text in `fmt` (the terminal table at 100 columns, without colour)."""
    if fmt is Format.terminal:
        console = Console(width=TEXT_WIDTH, record=True, file=io.StringIO(), color_system=None)
        print_comparison(console, sc)
        return console.export_text()
    pages = {Format.md: markdown, Format.html: html_page, Format.json: as_json}
    text = as_csv(sc) if fmt is Format.csv else pages[fmt](sc)
    return text if text.endswith("\n") else text + "\n"


def _target(path: Path, fmt: Format) -> Path:
    """--out: a file, or a folder to write compare.<format> into."""
    if path.is_dir():
        return path / f"compare.{'txt' if fmt is Format.terminal else fmt.value}"
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder {path.parent} does not exist",
            source="--out",
            fix="give a file in an existing folder, or an existing folder",
        )
    return path


def reproduced_lines(b: Path) -> list[str]:
    """For a study `llem-docker reproduce` made: how its machine differed from the
    original's (reproduce.json), the warnings first."""
    from llem_docker.review.reproduce import read_record

    record = read_record(b)
    if record is None:
        return []
    lines = [f"warning: {w}" for w in record.get("warnings", [])]
    if record.get("allow_image_drift"):
        lines.append("the rerun was allowed an image that differs from the original's")
    diffs = [d for d in record.get("environment", []) if d.get("status") == "different"]
    lines += [f"different: {d['field']}: {d['original']!r} there, {d['current']!r} here"
              for d in diffs]  # fmt: skip
    return lines or ["environment: no field differs from the original's"]


def compare(
    a: Path = typer.Argument(..., metavar="A", help="the original study's results folder"),
    b: Path = typer.Argument(..., metavar="B", help="the rerun's results folder"),
    margin: str = typer.Option(
        "5%",
        "--margin",
        metavar="MARGIN",
        help="relative margin of equivalence: 5% or 0.05",
    ),
    metric: list[str] | None = typer.Option(
        None,
        "--metric",
        metavar="COLUMN",
        help="a results.parquet column to compare (repeatable; default J/token, tokens/s, "
        "TTFT, and J/request for serving points); the first one is the summary's",
    ),
    fmt: Format = typer.Option(Format.terminal, "--format", help="the output format"),
    out_path: Path | None = typer.Option(
        None,
        "--out",
        metavar="FILE",
        help="write the output to this file (a folder: compare.<format> in it)",
    ),
    ignore: list[str] | None = typer.Option(
        None,
        "--ignore",
        metavar="KEY",
        help="pair points whose configs differ only in this key (repeatable; e.g. batch_size): "
        "to judge a deliberate change",
    ),
) -> None:
    """Compare a rerun B with the study A it reproduces, point by point.

    Per point (same config hash) and figure, both means, B/A − 1 with its 95% interval, and
    a verdict at the margin: equivalent (two one-sided tests on ln x), different, or
    inconclusive with the cycles per side that would decide it. Points in one study only are listed.

    The exit code is 0 whenever the comparison ran, whatever the verdicts; 2 for bad input."""
    for side, path in (("A", a), ("B", b)):
        if not StudyDir(path).manifest.is_file():
            raise ConfigError(
                f"{path} is not a study's results folder (no manifest.json)",
                source=side,
                fix="give two results folders (a pack: extract it with llem-docker reproduce)",
            )
    sc = compare_studies(
        a, b, margin=parse_margin(margin), metrics=metric or None,
        env_lines=reproduced_lines(b), ignore=ignore or (),
    )  # fmt: skip
    if out_path is None:
        if fmt is Format.terminal:
            print_comparison(out, sc)
        else:
            print(render(sc, fmt), end="")
        return
    target = _target(out_path, fmt)
    target.write_text(render(sc, fmt), "utf-8")
    out.print(escape(sc.summary()), highlight=False)
    out.print(f"wrote {escape(str(target))}", highlight=False)
