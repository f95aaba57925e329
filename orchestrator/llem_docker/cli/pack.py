"""`llem-docker pack RESULTS_DIR`: one study's results folder as a single .tar.gz for a
reviewer (review/pack.py; docs/reproduce.md, "pack")."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from llem_docker.errors import ConfigError
from llem_docker.store.layout import MANIFEST_FILE

console = Console(soft_wrap=False)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _check(results_dir: Path, out: Path | None) -> None:
    if not results_dir.is_dir():
        what = "is not a folder" if results_dir.exists() else "does not exist"
        raise ConfigError(
            f"{results_dir} {what}",
            source="RESULTS_DIR",
            fix="give a study's results folder (the one holding manifest.json)",
        )
    if not (results_dir / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"{results_dir} is not a study folder: it has no {MANIFEST_FILE}",
            source="RESULTS_DIR",
            fix="give the folder `llem-docker run` wrote for the study "
            "(<results>/<study>_<time>), not the results folder above it",
        )
    if out is not None and not out.is_dir() and not out.expanduser().parent.is_dir():
        raise ConfigError(
            f"the folder {out.expanduser().parent} does not exist",
            source="--out",
            fix="create it first, or give a path in a folder that exists",
        )


def pack(
    results_dir: Path = typer.Argument(..., metavar="RESULTS_DIR", help="a study's results folder"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="the archive to write, or a folder to write it into "
        "(default: RESULTS_DIR.llem-pack.tar.gz beside the study folder)",
    ),
    no_raw: bool = typer.Option(
        False,
        "--no-raw",
        help="leave out each run's raw data: its Parquet files (power timeseries, requests, "
        "responses, engine metrics) and container.log",
    ),
) -> None:
    """Pack a study into one .tar.gz a reviewer can check and rerun.

    The study file, its results, every run's records, a report.md and pack.json (the
    environment, image digests and a sha256 of each file). Refuses, naming the file, when a
    file holds a secret (the value of HF_TOKEN or the like)."""
    from llem_docker.review.pack import pack as write_pack
    from llem_docker.review.unpack import pack_info

    _check(results_dir, out)
    path = write_pack(results_dir, out, raw=not no_raw)
    info = pack_info(path)
    count = len(info.files) + 1  # and pack.json
    console.print(f"wrote {escape(str(path))}", highlight=False)
    console.print(
        f"{_size(path.stat().st_size)}, {count} files"
        f"{'' if info.raw else ' (without the raw data: --no-raw)'}",
        highlight=False,
    )
    for note in [*([info.study_file.note] if info.study_file.note else []), *info.notes]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
