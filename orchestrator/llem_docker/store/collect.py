"""Assemble a StudyResult (study.json + results.parquet) from a results folder on disk.

The SLURM executor's last step (`llem-docker collect`), and a way to rebuild study.json for
any study whose manifest survived: everything is read back from manifest.json and the run
directories (experiment.json for the model, runner and measurement settings; result.json of
each completed run).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest, utc_now
from llem_docker.store.results_parquet import write_results_parquet
from llem_docker.store.study_result import StudyResult, build_study_result, write_study_json
from llem_harness.host_api import (
    ExperimentConfig,
    ExperimentResult,
    MeasurementSettings,
    RunnerInfo,
    RunRequest,
)


def assemble(
    study_dir: Path,
    manifest: Manifest,
    *,
    measurement: MeasurementSettings | None = None,
    runners: Mapping[str, RunnerInfo] | None = None,
    ended_at: str | None = None,
    wall_time_s: float | None = None,
) -> tuple[StudyResult, dict[str, object]]:
    """Write study.json and results.parquet from the manifest and the run folders: the one
    builder, for the inline loop at a study's end and for `collect` alike. The loop passes
    what it knows better (the measurement settings and runners where no run recorded them,
    its own end time and monotonic wall time); collect works them out from the files."""
    layout = StudyDir(study_dir)
    results: dict[str, ExperimentResult] = {}
    models: dict[str, str] = {}
    configs: dict[str, ExperimentConfig] = {}
    recorded: dict[str, RunnerInfo] = {}
    seen: MeasurementSettings | None = None
    swept: dict[str, None] = {}
    for e in manifest.runs:
        swept.update(dict.fromkeys(e.swept))
        run = layout.run(e.run_id)
        try:
            req = RunRequest.model_validate_json(run.experiment.read_text("utf-8"))
        except (OSError, ValidationError, ValueError):
            req = None
        if req is not None:
            models[e.run_id] = req.config.model
            configs[e.run_id] = req.config
            recorded.setdefault(e.backend, req.runner)
            seen = seen or req.measurement
        if e.state != "completed":
            continue
        try:
            res = ExperimentResult.model_validate_json(run.result.read_text("utf-8"))
        except (OSError, ValidationError, ValueError):
            continue
        if res.run.run_id == e.run_id:
            results[e.run_id] = res
            models[e.run_id] = res.model
    recorded |= dict(runners or {})  # the live runners' record wins (a resume's new image)
    if ended_at is None:
        ends = [e.ended_at for e in manifest.runs if e.ended_at]
        ended_at = max(ends) if ends else utc_now()
    if wall_time_s is None:
        wall = datetime.fromisoformat(ended_at) - datetime.fromisoformat(manifest.created_at)
        wall_time_s = max(wall.total_seconds(), 0.0)
    result = build_study_result(
        manifest,
        results,
        measurement or seen or MeasurementSettings(),
        recorded,
        ended_at=ended_at,
        wall_time_s=wall_time_s,
    )
    data = write_study_json(study_dir, result)
    write_results_parquet(
        layout.results_parquet,
        result,
        results,
        {e.run_id: models.get(e.run_id, "") for e in manifest.runs},
        tuple(swept),
        configs,
    )
    return result, data
