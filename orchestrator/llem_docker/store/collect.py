"""Assemble a StudyResult (study.json + results.parquet) from a results folder on disk.

The SLURM executor's last step (`llem-docker collect`), and a way to rebuild study.json for
any study whose manifest survived: everything is read back from manifest.json and the run
directories (experiment.json for the model, runner and measurement settings; result.json of
each completed run).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from llem_docker.store.manifest import Manifest, utc_now
from llem_docker.store.study_result import (
    RESULTS_FILE,
    StudyResult,
    build_study_result,
    write_results_parquet,
    write_study_json,
)
from llem_harness.config import ExperimentConfig
from llem_harness.contract import (
    EXPERIMENT_FILE,
    RESULT_FILE,
    ExperimentResult,
    MeasurementSettings,
    RunnerInfo,
    RunRequest,
)


def assemble(study_dir: Path, manifest: Manifest) -> tuple[StudyResult, dict[str, object]]:
    results: dict[str, ExperimentResult] = {}
    models: dict[str, str] = {}
    configs: dict[str, ExperimentConfig] = {}
    runners: dict[str, RunnerInfo] = {}
    measurement: MeasurementSettings | None = None
    swept: dict[str, None] = {}
    for e in manifest.runs:
        swept.update(dict.fromkeys(e.swept))
        run_dir = study_dir / "runs" / e.run_id
        try:
            req = RunRequest.model_validate_json((run_dir / EXPERIMENT_FILE).read_text("utf-8"))
        except (OSError, ValidationError, ValueError):
            req = None
        if req is not None:
            models[e.run_id] = req.config.model
            configs[e.run_id] = req.config
            runners.setdefault(e.backend, req.runner)
            measurement = measurement or req.measurement
        if e.state != "completed":
            continue
        try:
            res = ExperimentResult.model_validate_json((run_dir / RESULT_FILE).read_text("utf-8"))
        except (OSError, ValidationError, ValueError):
            continue
        if res.run.run_id == e.run_id:
            results[e.run_id] = res
            models[e.run_id] = res.model
    ends = [e.ended_at for e in manifest.runs if e.ended_at]
    ended = max(ends) if ends else utc_now()
    wall = datetime.fromisoformat(ended) - datetime.fromisoformat(manifest.created_at)
    result = build_study_result(
        manifest,
        results,
        measurement or MeasurementSettings(),
        runners,
        ended_at=ended,
        wall_time_s=max(wall.total_seconds(), 0.0),
    )
    data = write_study_json(study_dir, result)
    write_results_parquet(
        study_dir / RESULTS_FILE,
        result,
        results,
        {e.run_id: models.get(e.run_id, "") for e in manifest.runs},
        tuple(swept),
        configs,
    )
    return result, data
