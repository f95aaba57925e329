"""A study's serving traces (`serving.arrival: trace`, docs/serving.md) checked before anything
runs, the dry run included: each file must exist and read as the harness reads it (its
serving/trace.py, through host_api), so that the host refuses exactly what a run would."""

from __future__ import annotations

from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.execution.preflight import named_file
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import read_trace

KEY = "serving.trace"


def resolve_trace(name: str, study: StudyConfig) -> Path:
    """`name` against the study file's folder, as a dataset path is; a missing file is a
    ConfigError."""
    return named_file(name, study, key=KEY, kind="trace file")


def check_traces(plan: StudyPlan, study: StudyConfig) -> None:
    seen: set[tuple[str, float, str]] = set()
    for point in plan.points:
        opts = point.config.serving_options()
        if opts.arrival != "trace" or opts.trace is None:
            continue
        key = (opts.trace, opts.trace_scale, opts.trace_unit)
        if key in seen:
            continue
        seen.add(key)
        path = resolve_trace(opts.trace, study)
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
