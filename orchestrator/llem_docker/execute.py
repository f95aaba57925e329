"""The study loop: prepare every run directory, run them in order with thermal gaps, classify
each outcome from the exchange contract, keep manifest.json current, write the StudyResult.

Skip-and-continue: a failed run is recorded and the next one runs. After
`execution.max_consecutive_failures` failures in a row the remaining runs are skipped and the
study is `aborted`. Ctrl+C kills the current run, records everything, then raises
StudyInterrupted (a KeyboardInterrupt) carrying the partial outcome.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from llem_docker.errors import ConfigError
from llem_docker.expand import PlannedRun, StudyPlan, gap_before, gap_kind
from llem_docker.manifest import Manifest, RunError, RunState, StudyState, utc_now
from llem_docker.progress import StudyDisplay, print_summary
from llem_docker.resume import reopen
from llem_docker.runners.base import Runner, RunnerFactory, RunOutcome, make_runner
from llem_docker.settings import RunnerSpec, Settings
from llem_docker.study import StudyConfig
from llem_docker.study_result import (
    RESULTS_FILE,
    StudyResult,
    build_study_result,
    write_results_parquet,
    write_study_json,
)
from llem_harness.contract import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    LOG_FILE,
    RESULT_FILE,
    ErrorInfo,
    ExperimentResult,
    MeasurementSettings,
    RunIdentity,
    RunRequest,
    atomic_write_json,
)

RUN_DATASET = "dataset.jsonl"
LOG_TAIL_LINES = 20
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


@dataclass
class _Classified:
    state: RunState
    result: ExperimentResult | None = None
    error: RunError | None = None


def measurement_settings(settings: Settings) -> MeasurementSettings:
    """The user config's `measurement:` with env overrides applied."""
    return MeasurementSettings.model_validate(
        {k: settings.value(f"measurement.{k}") for k in MeasurementSettings.model_fields}
    )


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
    backends = sorted(plan.counts())
    specs = {b: runners[b] for b in backends}
    live = {b: runner_factory(spec, settings) for b, spec in specs.items()}
    datasets = _resolve_datasets(plan, study)
    measurement = measurement_settings(settings)
    results: dict[str, ExperimentResult] = {}
    if resume is None:
        study_dir = _make_study_dir(Path(str(settings.value("output.results_dir"))), plan.name)
        study_file = str(Path(study.source).resolve()) if study.source else None
        manifest = Manifest.new(plan, study_dir.name, study_file, specs)
        todo = {r.run_id for r in plan.runs}
    else:
        study_dir = resume[0]
        manifest, results, again = reopen(study_dir, resume[1], specs)
        todo = set(again)
    manifest.write(study_dir)
    display_console = Console(stderr=True) if as_json else console
    t0 = time.monotonic()
    interrupted = False
    try:
        for run in plan.runs:  # every experiment.json up front: the folder documents the plan
            if run.run_id in todo:
                _prepare_run(study_dir, plan, run, live, measurement, datasets)
        with StudyDisplay(display_console, len(todo)) as display:
            what = f"{len(todo)} runs" + (f" ({len(results)} already completed)" if resume else "")
            display.note(f"study {study_dir.name}: {what} → {study_dir}")
            interrupted = _loop(plan, settings, live, manifest, study_dir, display, results, todo)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        manifest.state = "failed"
        with contextlib.suppress(Exception):  # the original error matters more
            _finish(manifest, study_dir, plan, results, measurement, live, t0)
        raise
    if interrupted:
        manifest.state = "interrupted"
        for e in manifest.runs:
            if e.state == "running":  # Ctrl+C came between the runner and the manifest
                e.state, e.ended_at = "interrupted", utc_now()
                e.error = RunError(type="Interrupted", message="interrupted by Ctrl+C")
    elif manifest.state == "running":
        states = {e.state for e in manifest.runs}
        manifest.state = "completed" if states == {"completed"} else "failed"
    outcome = _finish(manifest, study_dir, plan, results, measurement, live, t0)
    if not as_json:
        print_summary(console, outcome.result, str(study_dir))
    if interrupted:
        raise StudyInterrupted(outcome)
    return outcome


def _loop(
    plan: StudyPlan,
    settings: Settings,
    live: dict[str, Runner],
    manifest: Manifest,
    study_dir: Path,
    display: StudyDisplay,
    results: dict[str, ExperimentResult],
    todo: set[str],
) -> bool:
    """Run the runs in `todo`, in plan order. True when Ctrl+C stopped it (already recorded
    in the manifest)."""
    config_gap = float(settings.value("execution.config_gap_seconds"))
    cycle_gap = float(settings.value("execution.cycle_gap_seconds"))
    timeout = float(settings.value("execution.experiment_timeout_seconds"))
    max_failures = int(settings.value("execution.max_consecutive_failures"))
    order = plan.execution.cycle_order
    prev: PlannedRun | None = None
    failures = 0
    runs = [r for r in plan.runs if r.run_id in todo]
    for pos, run in enumerate(runs):
        gap = gap_before(prev, run, order, config_gap, cycle_gap)
        if gap > 0:
            display.gap(gap, f"{gap_kind(prev, run, order)} gap")
        prev = run
        run_dir = study_dir / "runs" / run.run_id
        manifest.start_run(study_dir, run.run_id)
        display.start_run(run.run_id)
        last_phase: list[str | None] = [None]

        def on_event(event: dict[str, Any], last: list[str | None] = last_phase) -> None:
            if event.get("event") == "phase":
                last[0] = str(event.get("phase"))
            display.event(event)

        outcome = live[run.point.config.backend].run(run_dir, timeout_s=timeout, on_event=on_event)
        got = _classify(run, run_dir, outcome, last_phase[0], timeout)
        manifest.end_run(
            study_dir, run.run_id, got.state, exit_code=outcome.exit_code, error=got.error
        )
        if got.result is not None:
            results[run.run_id] = got.result
        err = f"{got.error.type}: {got.error.message.splitlines()[0]}" if got.error else None
        display.end_run(run.run_id, got.state, got.result, err)
        if outcome.interrupted:  # even if the run itself got to finish
            return True
        failures = failures + 1 if got.state == "failed" else 0
        fatal = outcome.failure in FATAL_FAILURES
        if (fatal or failures >= max_failures) and pos + 1 < len(runs):
            reason = RunError(
                type="CircuitBreaker",
                message=f"skipped: every run would fail the same way ({outcome.failure})"
                if fatal
                else f"skipped after {failures} consecutive failed runs "
                f"(execution.max_consecutive_failures = {max_failures})",
            )
            manifest.skip_pending(reason)
            manifest.state = "aborted"
            manifest.write(study_dir)
            display.note(f"[red]{reason.message}; the study is aborted[/red]")
            break
    return False


def _failed(kind: str, message: str, phase: str | None) -> _Classified:
    return _Classified("failed", error=RunError(type=kind, message=message, phase=phase))


def _classify(
    run: PlannedRun, run_dir: Path, outcome: RunOutcome, phase: str | None, timeout: float
) -> _Classified:
    """result.json > interrupt > timeout > OOM kill > error.json > runner failure > crash."""
    result_path = run_dir / RESULT_FILE
    if result_path.exists():
        try:
            res = ExperimentResult.model_validate_json(result_path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, OSError) as exc:
            lines = str(exc).splitlines()
            return _failed("MalformedResult", "; ".join(lines[:3]) or repr(exc), "write")
        if res.run.run_id != run.run_id:
            msg = f"result.json belongs to run {res.run.run_id}, not {run.run_id}"
            return _failed("MalformedResult", msg, "write")
        return _Classified("completed", result=res)
    info = _read_error(run_dir)
    where = info.phase if info else phase
    if outcome.interrupted:
        msg = "interrupted by Ctrl+C; the harness process group was killed"
        return _Classified(
            "interrupted", error=RunError(type="Interrupted", message=msg, phase=where)
        )
    if outcome.timed_out:
        msg = (
            f"no result within experiment_timeout_seconds = {timeout:g} s"
            + (f" (still in phase `{where}`)" if where else "")
            + "; the run was stopped. Fix: raise execution.experiment_timeout_seconds "
            "in the user config, or shrink the experiment"
        )
        return _failed("Timeout", msg, where)
    if outcome.oom_killed:
        return _failed("OOMKilled", outcome.detail or "killed for lack of memory", where)
    if info is not None:
        return _failed(info.type, info.message, info.phase)
    if outcome.failure is not None:
        return _failed(outcome.failure, outcome.detail or outcome.failure, phase)
    how = f"exited with code {outcome.exit_code}" if outcome.exit_code is not None else "failed"
    detail = f" ({outcome.detail})" if outcome.detail else ""
    tail = _log_tail(run_dir / LOG_FILE)
    msg = f"the harness {how}{detail} and wrote neither result.json nor error.json"
    msg += f"; last lines of {LOG_FILE}:\n{tail}" if tail else f"; {LOG_FILE} is empty"
    return _failed("HarnessCrashed", msg, phase)


def _read_error(run_dir: Path) -> ErrorInfo | None:
    path = run_dir / ERROR_FILE
    if not path.exists():
        return None
    try:
        return ErrorInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError):
        return None


def _log_tail(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=LOG_TAIL_LINES)).rstrip()
    except OSError:
        return ""


def _finish(
    manifest: Manifest,
    study_dir: Path,
    plan: StudyPlan,
    results: dict[str, ExperimentResult],
    measurement: MeasurementSettings,
    live: dict[str, Runner],
    t0: float,
) -> StudyOutcome:
    manifest.write(study_dir)
    info = {b: r.info() for b, r in live.items()}
    result = build_study_result(
        manifest,
        results,
        measurement,
        info,
        ended_at=utc_now(),
        wall_time_s=time.monotonic() - t0,
    )
    data = write_study_json(study_dir, result)
    write_results_parquet(study_dir / RESULTS_FILE, result, results, plan)
    return StudyOutcome(manifest.state, study_dir, result, data)


# -- preparation ---------------------------------------------------------------------------
def _resolve_datasets(plan: StudyPlan, study: StudyConfig) -> dict[str, Path]:
    """Every .jsonl dataset, resolved against the study file's folder; all checked up front."""
    base = Path(study.source).resolve().parent if study.source else Path.cwd()
    found: dict[str, Path] = {}
    for point in plan.points:
        name = point.config.dataset
        if not name.endswith(".jsonl") or name in found:
            continue
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ConfigError(
                f"dataset file `{name}` does not exist (looked for {path})",
                source=study.source,
                key="dataset",
                fix="give a path relative to the study file's folder, or an absolute path",
            )
        found[name] = path
    return found


def _make_study_dir(results_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "study"
    results_dir = results_dir.expanduser()
    results_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = results_dir / (f"{safe}_{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "runs").mkdir()
        return path
    raise FileExistsError(f"could not create a results folder for {safe}_{stamp}")


def _prepare_run(
    study_dir: Path,
    plan: StudyPlan,
    run: PlannedRun,
    live: dict[str, Runner],
    measurement: MeasurementSettings,
    datasets: dict[str, Path],
) -> None:
    run_dir = study_dir / "runs" / run.run_id
    run_dir.mkdir(parents=True)
    config = run.point.config
    if config.dataset in datasets:
        shutil.copyfile(datasets[config.dataset], run_dir / RUN_DATASET)
        config = config.model_copy(update={"dataset": RUN_DATASET})
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
    )
    atomic_write_json(run_dir / EXPERIMENT_FILE, request.model_dump(mode="json"))
