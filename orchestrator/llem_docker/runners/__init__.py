"""Runners: how one prepared run directory gets executed (local subprocess, container, ...)."""

from llem_docker.runners.base import Runner, RunnerFactory, RunOutcome, make_runner
from llem_docker.runners.local import LocalRunner

__all__ = ["LocalRunner", "RunOutcome", "Runner", "RunnerFactory", "make_runner"]
