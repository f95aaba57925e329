"""StudyResult: study.json, the summary a reviewer reads (results.parquet, one row per run:
store/results_parquet.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llem_docker.capacity.result import SearchResult, build_searches
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import (
    Manifest,
    RunEntry,
    RunError,
    RunState,
    StudyState,
    ThermalGaps,
)
from llem_docker.study.model import ExecutionConfig
from llem_harness.host_api import (
    ExperimentResult,
    MeasurementSettings,
    RunnerInfo,
    __version__,
    atomic_write_json,
)

STUDY_SCHEMA_VERSION = "1.2"  # 1.2: `thermal_gaps`; 1.1: capacity searches (`searches`, ...)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunnerRecord(_Model):
    kind: str
    target: str | None
    source: str
    image_digest: str | None


class StudySummary(_Model):
    runs: int
    completed: int
    failed: int
    interrupted: int
    skipped: int
    pending: int
    total_energy_j: float | None  # over completed runs with an energy reading; null if none
    runs_with_energy: int
    total_output_tokens: int | None  # over completed runs; null if none completed
    measured_duration_s: float | None  # sum of measurement windows of completed runs


class StudyRun(_Model):
    run_id: str
    index: int
    cycle: int
    backend: str
    state: RunState
    swept: dict[str, Any] = Field(default_factory=dict)
    config_hash: str
    duration_s: float | None
    throughput_tokens_per_s: float | None
    energy_total_j: float | None
    energy_per_output_token_j: float | None
    error: RunError | None
    search: str | None = None  # 1.1: a capacity search's probe: the search's id ...
    probe: int | None = None  # ... and the probe's number


class StudyResult(_Model):
    schema_version: str = STUDY_SCHEMA_VERSION
    llem_version: str = __version__
    study_name: str
    study_id: str
    design_hash: str
    study_file: str | None
    state: StudyState
    started_at: str
    ended_at: str
    wall_time_s: float
    execution: ExecutionConfig
    thermal_gaps: list[ThermalGaps] = Field(default_factory=list)  # 1.2: each start's (manifest)
    measurement: MeasurementSettings
    runners: dict[str, RunnerRecord]
    summary: StudySummary
    runs: list[StudyRun]
    searches: list[SearchResult] = Field(default_factory=list)  # 1.1


def _study_run(e: RunEntry, results: dict[str, ExperimentResult]) -> StudyRun:
    res = results.get(e.run_id) if e.state == "completed" else None
    return StudyRun(
        run_id=e.run_id,
        index=e.index,
        cycle=e.cycle,
        backend=e.backend,
        state=e.state,
        swept=e.swept,
        config_hash=e.config_hash,
        duration_s=res.duration_s if res else None,
        throughput_tokens_per_s=res.throughput_tokens_per_s if res else None,
        energy_total_j=res.energy.total_j if res else None,
        energy_per_output_token_j=res.energy_per_output_token_j if res else None,
        error=e.error,
        search=e.search,
        probe=e.probe,
    )


def build_study_result(
    manifest: Manifest,
    results: dict[str, ExperimentResult],
    measurement: MeasurementSettings,
    runner_info: dict[str, RunnerInfo],
    *,
    ended_at: str,
    wall_time_s: float,
) -> StudyResult:
    runs = [_study_run(e, results) for e in manifest.runs]
    done = [r for e in manifest.runs if e.state == "completed" and (r := results.get(e.run_id))]
    energies = [r.energy.total_j for r in done if r.energy.total_j is not None]
    states = [e.state for e in manifest.runs]
    summary = StudySummary(
        runs=len(states),
        completed=states.count("completed"),
        failed=states.count("failed"),
        interrupted=states.count("interrupted"),
        skipped=states.count("skipped"),
        pending=sum(states.count(s) for s in ("pending", "queued", "running")),
        total_energy_j=sum(energies) if energies else None,
        runs_with_energy=len(energies),
        total_output_tokens=sum(r.tokens.output for r in done) if done else None,
        measured_duration_s=sum(r.duration_s for r in done) if done else None,
    )
    runners = {
        b: RunnerRecord(
            kind=c.kind,
            target=c.target,
            source=c.source,
            image_digest=runner_info[b].image_digest if b in runner_info else None,
        )
        for b, c in manifest.runners.items()
    }
    return StudyResult(
        study_name=manifest.study_name,
        study_id=manifest.study_id,
        design_hash=manifest.design_hash,
        study_file=manifest.study_file,
        state=manifest.state,
        started_at=manifest.created_at,
        ended_at=ended_at,
        wall_time_s=round(wall_time_s, 3),
        execution=manifest.execution,
        thermal_gaps=manifest.thermal_gaps,
        measurement=measurement,
        runners=runners,
        summary=summary,
        runs=runs,
        searches=build_searches(manifest, results),
    )


def write_study_json(study_dir: Path, result: StudyResult) -> dict[str, Any]:
    data = result.model_dump(mode="json")
    atomic_write_json(StudyDir(study_dir).study_json, data)
    return data
