"""One study's live state while its runs go, and one run from start to record: the thermal
gap before it, the manifest's transitions, the runner, the classification and the line on
screen. The study loop runs the plan's runs through it, and a capacity search its probes
(capacity/driver.py), so a probe is recorded exactly as any other run."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llem_docker.execution.classify import Classified
from llem_docker.execution.execute import execute_run
from llem_docker.execution.prepare import prepare_run
from llem_docker.execution.progress import StudyDisplay
from llem_docker.execution.runners import ENGINE_LOST, Runner
from llem_docker.execution.runners.base import RunOutcome
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest, RunState
from llem_docker.study.plan import PlannedRun, StudyPlan, gap_before, gap_kind
from llem_harness.host_api import ExperimentResult, MeasurementSettings


@dataclass(frozen=True)
class Step:
    """How one run (or one search, by its last probe) ended, for the study's circuit breaker."""

    state: RunState
    interrupted: bool = False  # Ctrl+C: the study stops here
    failure: str | None = None  # the runner's own failure type, if any
    lost: bool = False  # the Docker engine went away
    result: ExperimentResult | None = None

    @classmethod
    def of(cls, outcome: RunOutcome, got: Classified) -> Step:
        lost = got.error is not None and got.error.type == ENGINE_LOST
        return cls(got.state, outcome.interrupted, outcome.failure, lost, got.result)


@dataclass
class Session:
    plan: StudyPlan
    live: dict[str, Runner]
    manifest: Manifest
    study_dir: Path
    display: StudyDisplay
    results: dict[str, ExperimentResult]
    measurement: MeasurementSettings
    datasets: dict[str, Path]
    models: Mapping[str, str]
    timeout_s: float
    config_gap_s: float
    cycle_gap_s: float
    prev: PlannedRun | None = field(default=None)

    def prepare(self, run: PlannedRun) -> None:
        """The run's folder and experiment.json (a leftover folder of the same id goes)."""
        path = StudyDir(self.study_dir).run(run.run_id).path
        if path.exists():
            shutil.rmtree(path)
        prepare_run(
            self.study_dir, self.plan, run, self.live, self.measurement, self.datasets, self.models
        )

    def gap(self, run: PlannedRun) -> None:
        order = self.plan.execution.cycle_order
        seconds = gap_before(self.prev, run, order, self.config_gap_s, self.cycle_gap_s)
        if seconds > 0:
            self.display.gap(seconds, f"{gap_kind(self.prev, run, order)} gap")
        self.prev = run

    def run_one(self, run: PlannedRun) -> Step:
        """Wait out the gap, run the prepared run, record how it ended."""
        self.gap(run)
        run_dir = StudyDir(self.study_dir).run(run.run_id).path
        self.manifest.start_run(self.study_dir, run.run_id)
        self.display.start_run(run.run_id)
        runner = self.live[run.point.config.backend]
        done = execute_run(
            runner, run.run_id, run_dir, timeout_s=self.timeout_s, on_event=self.display.event
        )
        step = Step.of(done.outcome, done.got)
        got = done.got
        if step.lost and got.error is not None:
            got.error.message += (
                ". Once `docker info` answers again, finish the study with "
                f"`{resume_command(self.manifest, self.study_dir)}`"
            )
        self.manifest.end_run(
            self.study_dir, run.run_id, got.state, exit_code=done.outcome.exit_code, error=got.error
        )
        if got.result is not None:
            self.results[run.run_id] = got.result
        err = f"{got.error.type}: {got.error.message.splitlines()[0]}" if got.error else None
        self.display.end_run(run.run_id, got.state, got.result, err)
        return step


def resume_command(manifest: Manifest, study_dir: Path) -> str:
    study = shlex.quote(manifest.study_file) if manifest.study_file else "STUDY"
    return f"llem-docker run {study} --resume {shlex.quote(str(study_dir))}"


def engine_gone(manifest: Manifest, study_dir: Path) -> str:
    """What happened, and what to do, when the engine went away mid-study."""
    return (
        "the Docker engine went away, so the study stopped here. Once `docker info` answers "
        f"again, finish it with `{resume_command(manifest, study_dir)}`"
    )
