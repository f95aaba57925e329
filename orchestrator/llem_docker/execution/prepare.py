"""Everything a study needs on disk before its first run: the results folder, one run
directory per run with its experiment.json (and dataset copy). Shared by the study loop and
the SLURM executor, so a folder documents its plan whichever way it runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from llem_docker.config.settings import Settings
from llem_docker.execution import hf_datasets
from llem_docker.execution.preflight import dataset_path
from llem_docker.execution.trace_check import resolve_trace
from llem_docker.store.layout import StudyDir
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import PlannedRun, StudyPlan
from llem_harness.host_api import (
    MeasurementSettings,
    RunIdentity,
    RunnerInfo,
    RunRequest,
    atomic_write_json,
)

RUN_DATASET = "dataset.jsonl"
RUN_TRACE = "trace"  # serving.arrival: trace: the trace's copy, `trace.jsonl` or `trace.csv`


class Described(Protocol):
    """A runner, as far as experiment.json is concerned."""

    def info(self) -> RunnerInfo: ...


def hub_cache(settings: Settings) -> Path:
    """The Hugging Face hub cache the host reads `hf:` datasets from."""
    out = settings.output
    if out.hub_cache_dir:
        return Path(str(out.hub_cache_dir)).expanduser()
    return Path(str(out.model_cache_dir)).expanduser() / "hub"


def measurement_settings(settings: Settings) -> MeasurementSettings:
    """The user config's `measurement:` with env overrides applied."""
    return settings.measurement


def resolve_datasets(
    plan: StudyPlan, study: StudyConfig, hub_cache: Path | None = None
) -> dict[str, Path]:
    """Every .jsonl dataset, resolved against the study file's folder, and every `hf:`
    dataset, read from the hub cache into a JSONL file (hf_datasets.py); all checked up
    front. Serving traces (`serving.trace`) are resolved into the same map, by the name the
    study gives them (trace_check.py)."""
    found: dict[str, Path] = {}
    for point in plan.points:
        trace = point.config.serving_options().trace
        if trace is not None and trace not in found:
            found[trace] = resolve_trace(trace, study)
        name = point.config.dataset
        if name.startswith(hf_datasets.PREFIX) and name not in found:
            most = max(p.config.n_prompts for p in plan.points if p.config.dataset == name)
            cache = hub_cache or Path.home() / ".cache" / "huggingface" / "hub"
            keep = sorted({q.references for p in plan.points if p.config.dataset == name
                           and (q := p.config.quality) is not None})  # fmt: skip
            found[name] = hf_datasets.to_jsonl(name, cache, most, study.source, tuple(keep))
            continue
        if name.endswith(".jsonl") and name not in found:
            found[name] = dataset_path(name, study)
    return found


def make_study_dir(results_dir: Path, name: str, source: str | None = None) -> Path:
    """A new study folder, named after the study and the time; `source` (the study file as
    given) is copied in as study.yaml, for a reviewer to rerun (llem-docker pack)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "study"
    results_dir = results_dir.expanduser().resolve()  # SLURM tasks run elsewhere
    results_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = results_dir / (f"{safe}_{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        StudyDir(path).runs.mkdir()
        if source is not None and Path(source).is_file():
            shutil.copyfile(source, StudyDir(path).study_source)
        return path
    raise FileExistsError(f"could not create a results folder for {safe}_{stamp}")


def prepare_run(
    study_dir: Path,
    plan: StudyPlan,
    run: PlannedRun,
    live: Mapping[str, Described],
    measurement: MeasurementSettings,
    datasets: dict[str, Path],
    models: Mapping[str, str] | None = None,
) -> None:
    """The run's folder and experiment.json: its dataset (and serving trace) copied in, and a
    GGUF model named as the run finds it (execution/models.py's `stage_models`). The config
    hash is the study's (`run.point.config_hash`), from before these rewrites."""
    run_dir = StudyDir(study_dir).run(run.run_id)
    run_dir.path.mkdir(parents=True)
    config = run.point.config
    if config.quality is not None and config.quality.task is None:  # named for its dataset
        task = Path(config.dataset).stem if config.dataset.endswith(".jsonl") else config.dataset
        config = config.model_copy(
            update={"quality": config.quality.model_copy(update={"task": task})}
        )
    if config.dataset in datasets:
        shutil.copyfile(datasets[config.dataset], run_dir.file(RUN_DATASET))
        config = config.model_copy(update={"dataset": RUN_DATASET})
    serving = config.serving
    if serving is not None and serving.trace is not None and serving.trace in datasets:
        local = RUN_TRACE + Path(serving.trace).suffix.lower()
        shutil.copyfile(datasets[serving.trace], run_dir.file(local))
        config = config.model_copy(update={"serving": serving.model_copy(update={"trace": local})})
    if models and config.model in models:
        config = config.model_copy(update={"model": models[config.model]})
    request = RunRequest(
        config=config,
        run=RunIdentity(
            study_name=plan.name,
            study_id=study_dir.name,
            design_hash=plan.design_hash,
            run_id=run.run_id,
            index=run.index,
            cycle=run.cycle,
            config_hash=run.point.config_hash,
        ),
        measurement=measurement,
        runner=live[config.backend].info(),
        validity=plan.validity,
    )
    atomic_write_json(run_dir.experiment, request.model_dump(mode="json"))
