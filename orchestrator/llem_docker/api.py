"""The library API: run a study or one experiment from Python, get the results back.

    from llem_docker import ExperimentConfig, run_experiment, run_study, load_results
    result = run_experiment(ExperimentConfig(model="llem/tiny-llama", backend="pytorch"),
                            runner="local")
    study = run_study("examples/quickstart.yaml", runner="local", no_gaps=True)
    table = load_results(study_dir)      # results.parquet as a pyarrow Table

Runners resolve exactly as on the command line (env > user config > `runner=` > docker).
Executions settle as on the command line (study/profiles.py), except that without a
`profile=` the base is one cycle where the CLI's is its `standard` profile. Ctrl+C raises
StudyInterrupted (a KeyboardInterrupt) after everything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from llem_docker.config.secrets import check_no_secrets
from llem_docker.config.yamlsrc import Document
from llem_docker.errors import LlemError
from llem_docker.execution.loop import StudyOutcome, execute_study
from llem_docker.execution.pipeline import prepare_study
from llem_docker.store.layout import StudyDir
from llem_docker.store.study_result import StudyResult
from llem_docker.study.loader import load_study, study_from_document
from llem_docker.study.model import StudyConfig
from llem_harness.host_api import ExperimentConfig, ExperimentResult

StudyLike = StudyConfig | Mapping[str, Any] | str | Path


class RunFailed(LlemError):
    """run_experiment's one run did not complete; the message carries its error."""


def _study(study: StudyLike) -> StudyConfig:
    if isinstance(study, StudyConfig):
        return study
    if isinstance(study, str | Path):
        return load_study(study)
    doc = Document(Path("<study>"), dict(study))
    check_no_secrets(doc)
    return study_from_document(doc)


def run_study(
    study: StudyLike,
    *,
    runner: str | None = None,
    results_dir: str | Path | None = None,
    cycles: int | None = None,
    no_gaps: bool = False,
    quiet: bool = True,
    profile: str | None = None,
    order: str | None = None,
) -> StudyResult:
    """Run every run of the study; return its StudyResult (also written as study.json).
    Failed runs are recorded in the result (`runs[i].error`), not raised. `profile`
    (quick, standard, publication), `cycles` and `order` settle the execution as the CLI's
    flags do (study/profiles.py); without a profile the base is one cycle."""
    return _execute(study, runner, results_dir, cycles, no_gaps, quiet, profile, order).result


def _execute(
    study: StudyLike,
    runner: str | None,
    results_dir: str | Path | None,
    cycles: int | None,
    no_gaps: bool,
    quiet: bool,
    profile: str | None = None,
    order: str | None = None,
) -> StudyOutcome:
    source = study if isinstance(study, str | Path) else "the study"
    prepared = prepare_study(
        _study(study),
        source=source,
        runner=runner,
        results_dir=results_dir,
        profile=profile,
        cycles=cycles,
        order=order,
        no_gaps=no_gaps,
        base=None,
    )
    return execute_study(
        prepared.plan,
        prepared.study,
        prepared.settings,
        prepared.runners,
        console=Console(quiet=quiet),
        as_json=quiet,
    )


def run_experiment(
    config: ExperimentConfig | Mapping[str, Any],
    *,
    runner: str | None = None,
    results_dir: str | Path | None = None,
) -> ExperimentResult:
    """Run one experiment (a study of one, one cycle, no gap); return its ExperimentResult.
    Raises RunFailed with the run's error type and message when it did not complete."""
    data = (
        config.model_dump(mode="json", exclude_unset=True)
        if isinstance(config, ExperimentConfig)
        else dict(config)
    )
    data.setdefault("name", str(data.get("model", "experiment")).replace("/", "-"))
    outcome = _execute(data, runner, results_dir, 1, True, True)
    (run,) = outcome.result.runs
    if run.state != "completed":
        err = f"{run.error.type}: {run.error.message}" if run.error else run.state
        raise RunFailed(f"the experiment did not complete ({err}); see {outcome.study_dir}")
    path = StudyDir(outcome.study_dir).run(run.run_id).result
    return ExperimentResult.model_validate_json(path.read_text(encoding="utf-8"))
