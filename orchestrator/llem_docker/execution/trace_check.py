"""A study's serving traces (`serving.arrival: trace`, docs/serving.md) checked before anything
runs, the dry run included: each file must exist and read as the harness reads it (its
serving/trace.py, through host_api), so that the host refuses exactly what a run would."""

from __future__ import annotations

from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import read_trace

KEY = "serving.trace"


def resolve_trace(name: str, base: Path, source: str | None) -> Path:
    """`name` against the study file's folder (`base`), as a dataset path is; a missing file
    is a ConfigError."""
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(
            f"trace file `{name}` does not exist (looked for {path})",
            source=source,
            key=KEY,
            fix="give a path relative to the study file's folder, or an absolute path",
        )
    return path


def check_traces(plan: StudyPlan, study: StudyConfig) -> None:
    base = Path(study.source).resolve().parent if study.source else Path.cwd()
    seen: set[tuple[str, float, str]] = set()
    for point in plan.points:
        opts = point.config.serving_options()
        if opts.arrival != "trace" or opts.trace is None:
            continue
        key = (opts.trace, opts.trace_scale, opts.trace_unit)
        if key in seen:
            continue
        seen.add(key)
        path = resolve_trace(opts.trace, base, study.source)
        try:
            read_trace(path, opts.trace_scale, opts.trace_unit)
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                source=study.source,
                key=KEY,
                fix="fix the trace at that line: one request a record, a finite timestamp "
                "(timestamp, Timestamp, time or arrival_s) at or after the one before, and "
                "whole token counts",
            ) from None
