"""Where everything of a study lives on disk: the one owner of folder and file names.

    <study_dir>/manifest.json           the run list and states (store/manifest.py)
    <study_dir>/.manifest.lock[.held]   the manifest's lock (store/lockfile.py)
    <study_dir>/study.json              the StudyResult (store/study_result.py)
    <study_dir>/study.yaml              the study file as given, copied when the study starts
    <study_dir>/results.parquet         one row per run
    <study_dir>/slurm/submit-N.{sbatch,runs}, submit-N-<job>_<task>.out   SLURM submissions
    <study_dir>/runs/<run_id>/          one run: the exchange contract's files
                                        (experiment.json, result.json, error.json,
                                        timeseries.parquet, requests.parquet, container.log,
                                        the run's dataset copy) and slurm-task.json

Nothing else joins these names by hand. A run's id is the manifest's; the folder is named
after it, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llem_harness.host_api import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    LOG_FILE,
    REQUESTS_FILE,
    RESULT_FILE,
    TIMESERIES_FILE,
)

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".manifest.lock"  # flock()ed where the filesystem allows
HELD_FILE = ".manifest.lock.held"  # the fallback lock file where it does not
RUN_LOCK_FILE = ".running.lock"  # held by the one process running the study's loop
STUDY_FILE = "study.json"
STUDY_SOURCE_FILE = "study.yaml"  # the study file as given (review/: pack, reproduce)
RESULTS_FILE = "results.parquet"
RUNS_DIR = "runs"
SLURM_DIR = "slurm"
TASK_FILE = "slurm-task.json"


@dataclass(frozen=True)
class RunDir:
    """One run's folder."""

    path: Path

    @property
    def experiment(self) -> Path:
        return self.path / EXPERIMENT_FILE

    @property
    def result(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def error(self) -> Path:
        return self.path / ERROR_FILE

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def timeseries(self) -> Path:
        return self.path / TIMESERIES_FILE

    @property
    def requests(self) -> Path:
        return self.path / REQUESTS_FILE

    @property
    def slurm_task(self) -> Path:
        return self.path / TASK_FILE

    def file(self, name: str) -> Path:
        """Another file of the run (the dataset copy the harness reads, say)."""
        return self.path / name


@dataclass(frozen=True)
class StudyDir:
    """One study's results folder."""

    path: Path

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def run_lock(self) -> Path:
        return self.path / RUN_LOCK_FILE

    @property
    def held(self) -> Path:
        return self.path / HELD_FILE

    @property
    def study_json(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def study_source(self) -> Path:
        return self.path / STUDY_SOURCE_FILE

    @property
    def results_parquet(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def runs(self) -> Path:
        return self.path / RUNS_DIR

    @property
    def slurm(self) -> Path:
        return self.path / SLURM_DIR

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.path / RUNS_DIR / run_id)

    def submission(self, number: int, suffix: str) -> Path:
        """slurm/submit-<number>.<suffix> (`sbatch`, `runs`)."""
        return self.path / SLURM_DIR / f"submit-{number}.{suffix}"

    def submission_output(self, number: int) -> Path:
        """The sbatch --output pattern of a submission (%A: job, %a: array task)."""
        return self.path / SLURM_DIR / f"submit-{number}-%A_%a.out"
