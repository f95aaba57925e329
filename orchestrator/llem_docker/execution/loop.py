"""The study loop: prepare every run directory, run them in order with thermal gaps, classify
each outcome from the exchange contract, keep manifest.json current, write the StudyResult.

Skip-and-continue: a failed run is recorded and the next one runs. After
`execution.max_consecutive_failures` failures in a row the remaining runs are skipped and the
study is `aborted`. So it is, at once, when the Docker engine goes away (EngineUnavailable):
every later run would fail too, and the message says how to resume once the engine is back.
Ctrl+C kills the current run, records everything, then raises StudyInterrupted (a
KeyboardInterrupt) carrying the partial outcome.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from llem_docker.capacity.driver import run_search
from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import DiskFull
from llem_docker.execution import hf_datasets
from llem_docker.execution.models import check_models, stage_models
from llem_docker.execution.prepare import (
    hub_cache,
    make_study_dir,
    measurement_settings,
    prepare_run,
    resolve_datasets,
)
from llem_docker.execution.progress import StudyDisplay, print_summary
from llem_docker.execution.resume import reopen
from llem_docker.execution.runners import ENGINE_LOST, Runner, RunnerFactory, make_runner
from llem_docker.execution.session import Session, engine_gone, resume_command
from llem_docker.store.collect import assemble
from llem_docker.store.manifest import Manifest, RunError, StudyState, ThermalGaps, utc_now
from llem_docker.store.repair import torn_outputs
from llem_docker.store.runlock import running
from llem_docker.store.study_result import StudyResult
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_docker.study.view import counted
from llem_harness.host_api import ExperimentResult, MeasurementSettings

EXIT_CODES: dict[str, int] = {"completed": 0, "interrupted": 130}
# Runner failures that no later run can escape: the study stops at the first.
FATAL_FAILURES = frozenset({"GpuUnavailable"})


@dataclass
class StudyOutcome:
    state: StudyState
    study_dir: Path
    result: StudyResult
    study_json: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.state, 1)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl+C during a study: everything is written; `outcome` holds the partial result."""

    def __init__(self, outcome: StudyOutcome) -> None:
        super().__init__(f"study interrupted; partial results in {outcome.study_dir}")
        self.outcome = outcome


def execute_study(
    plan: StudyPlan,
    study: StudyConfig,
    settings: Settings,
    runners: dict[str, RunnerSpec],
    *,
    console: Console,
    as_json: bool,
    runner_factory: RunnerFactory = make_runner,
    resume: tuple[Path, Manifest] | None = None,
) -> StudyOutcome:
    """Run every planned run (with `resume`: every run of that folder without a result);
    return the outcome, or raise StudyInterrupted on Ctrl+C."""
    specs = {b: runners[b] for b in sorted(plan.counts())}
    live = {b: runner_factory(spec, settings) for b, spec in specs.items()}
    datasets = resolve_datasets(plan, study, hub_cache(settings))
    models = stage_models(check_models(plan, study, settings), settings)
    if resume is None:
        study_dir = make_study_dir(Path(str(settings.output.results_dir)), plan.name, study.source)
    else:
        study_dir = resume[0].resolve()
    with running(study_dir), _dropped(datasets):  # one process runs a folder at a time
        if resume is None:
            study_file = str(Path(study.source).resolve()) if study.source else None
            manifest = Manifest.new(
                plan, study_dir.name, study_file, specs, ThermalGaps.now(settings)
            )
            results: dict[str, ExperimentResult] = {}
            todo = {r.run_id for r in plan.runs}
        else:  # read again under the lock: the folder is ours from here
            prior = Manifest.read(study_dir)
            manifest, results, again = reopen(study_dir, prior, specs, ThermalGaps.now(settings))
            todo = set(again)
        torn = [f"{name} could not be read ({why}); it is rebuilt from the run folders when "
                "this study ends" for name, why in torn_outputs(study_dir).items()]  # fmt: skip
        manifest.write(study_dir)
        live_study = _Live(plan, live, manifest, study_dir, results, datasets, models, todo, torn)
        return _execute(live_study, settings, console, as_json, resumed=resume is not None)


@contextlib.contextmanager
def _dropped(datasets: dict[str, Path]) -> Iterator[None]:
    """The JSONL copies of `hf:` datasets (hf_datasets.to_jsonl's temporary folders) go when
    the study ends, however it ends: each run has its own copy."""
    try:
        yield
    finally:
        for path in datasets.values():
            if path.parent.name.startswith(hf_datasets.TEMP_PREFIX):
                shutil.rmtree(path.parent, ignore_errors=True)


@dataclass
class _Live:
    """What a study's loop works on, once its folder is settled and locked."""

    plan: StudyPlan
    live: dict[str, Runner]
    manifest: Manifest
    study_dir: Path
    results: dict[str, ExperimentResult]
    datasets: dict[str, Path]
    models: dict[str, str]
    todo: set[str]
    notes: list[str]  # said before the first run


def _execute(
    st: _Live, settings: Settings, console: Console, as_json: bool, *, resumed: bool
) -> StudyOutcome:
    plan, live, manifest, study_dir, results, todo = (
        st.plan, st.live, st.manifest, st.study_dir, st.results, st.todo)  # fmt: skip
    datasets, models, measurement = st.datasets, st.models, measurement_settings(settings)
    display_console = Console(stderr=True) if as_json else console
    t0 = time.monotonic()
    interrupted = False
    try:
        for run in plan.runs:  # every experiment.json up front: the folder documents the plan
            if run.run_id in todo and run.search is None:  # (a probe's: when it is made)
                prepare_run(study_dir, plan, run, live, measurement, datasets, models)
        total = sum(r.most_runs for r in plan.runs if r.run_id in todo)
        with StudyDisplay(display_console, total) as display:
            what = counted(total, "run") if total == len(todo) else f"at most {total} runs"
            what += f" ({len(results)} already completed)" if resumed else ""
            display.note(f"study {study_dir.name}: {what} → {study_dir}")
            for note in st.notes:
                display.note(f"[yellow]note:[/yellow] {escape(note)}")
            session = Session(
                plan, live, manifest, study_dir, display, results, measurement, datasets, models,
                timeout_s=float(settings.execution.experiment_timeout_seconds),
                config_gap_s=float(settings.execution.config_gap_seconds),
                cycle_gap_s=float(settings.execution.cycle_gap_seconds),
            )  # fmt: skip
            interrupted = _loop(session, settings, todo)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:
        manifest.state = "failed"
        for e in manifest.entries():  # never leave one `running` behind
            if e.state == "running":
                e.state, e.ended_at = "failed", utc_now()
                e.error = RunError(type=type(exc).__name__, message=str(exc) or repr(exc))
        with contextlib.suppress(Exception):  # the original error matters more
            _finish(manifest, study_dir, measurement, live, t0)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(exc, resume_command(manifest, study_dir)) from exc
        raise
    if interrupted:
        manifest.state = "interrupted"
        for e in manifest.entries():
            if e.state == "running":  # Ctrl+C came between the runner and the manifest
                e.state, e.ended_at = "interrupted", utc_now()
                e.error = RunError(type="Interrupted", message="interrupted by Ctrl+C")
    elif manifest.state == "running":
        states = {e.state for e in manifest.entries()}
        manifest.state = "completed" if states == {"completed"} else "failed"
    outcome = _finish(manifest, study_dir, measurement, live, t0)
    if not as_json:
        print_summary(console, outcome.result, str(study_dir))
    if any(e.error is not None and e.error.type == ENGINE_LOST for e in manifest.runs):
        Console(stderr=True).print(  # soft wrap: the command stays whole, to copy
            f"[red]aborted:[/red] {escape(engine_gone(manifest, study_dir))}",
            highlight=False,
            soft_wrap=True,
        )
    if interrupted:
        raise StudyInterrupted(outcome)
    return outcome


def _loop(session: Session, settings: Settings, todo: set[str]) -> bool:
    """Run the runs (and searches) in `todo`, in plan order. True when Ctrl+C stopped it
    (already recorded in the manifest)."""
    max_failures = int(settings.execution.max_consecutive_failures)
    manifest, study_dir, display = session.manifest, session.study_dir, session.display
    failures = 0
    runs = [r for r in session.plan.runs if r.run_id in todo]
    for pos, run in enumerate(runs):
        step = run_search(session, run) if run.search is not None else session.run_one(run)
        if step.interrupted:  # even if the run itself got to finish
            return True
        failures = failures + 1 if step.state == "failed" else 0
        fatal = step.failure in FATAL_FAILURES
        why = None
        if step.lost:  # even after the last run: the study did not end by itself
            why = f"skipped: {engine_gone(manifest, study_dir)}"
        elif (fatal or failures >= max_failures) and pos + 1 < len(runs):
            why = (
                f"skipped: every run would fail the same way ({step.failure})"
                if fatal
                else f"skipped after {failures} consecutive failed runs "
                f"(execution.max_consecutive_failures = {max_failures})"
            )
        if why is not None:
            manifest.skip_pending(RunError(type="CircuitBreaker", message=why))
            manifest.state = "aborted"
            manifest.write(study_dir)
            display.note(f"[red]{escape(why)}; the study is aborted[/red]")
            break
    return False


def _finish(
    manifest: Manifest,
    study_dir: Path,
    measurement: MeasurementSettings,
    live: dict[str, Runner],
    t0: float,
) -> StudyOutcome:
    manifest.write(study_dir)
    result, data = assemble(
        study_dir,
        manifest,
        measurement=measurement,
        runners={b: r.info() for b, r in live.items()},
        ended_at=utc_now(),
        wall_time_s=time.monotonic() - t0,
    )
    return StudyOutcome(manifest.state, study_dir, result, data)
