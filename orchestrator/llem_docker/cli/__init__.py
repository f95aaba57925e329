"""The `llem-docker` command line: `run`, `report`, `status`/`collect`, `doctor`, `config`."""

from llem_docker.cli.app import app, main

__all__ = ["app", "main"]
