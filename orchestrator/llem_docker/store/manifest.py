"""manifest.json: the study's state, rewritten atomically at every transition.

A reader (a person, a script, a later resume) always sees a complete file: the last state
that was reached, never a partial write.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.store.layout import HELD_FILE, StudyDir
from llem_docker.store.lockfile import exclusive
from llem_docker.study.model import ExecutionConfig
from llem_docker.study.plan import PlannedRun, StudyPlan
from llem_harness.host_api import SLO, CapacitySearch, ValidityPolicy, atomic_write_text

MANIFEST_SCHEMA_VERSION = "1.5"  # 1.5: each start's thermal gaps; 1.4: capacity searches
StudyState = Literal["running", "completed", "failed", "interrupted", "aborted"]
RunState = Literal["pending", "queued", "running", "completed", "failed", "interrupted", "skipped"]
Executor = Literal["inline", "slurm"]


# Where flock() is not supported (some NFS and Lustre mounts): an O_EXCL lock file instead
# (layout.HELD_FILE).
LOCK_TIMEOUT_S = 300.0
NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
_log = logging.getLogger(__name__)
_warned: set[str] = set()


@contextlib.contextmanager
def locked(study_dir: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise read-modify-write of the manifest between `llem-docker status` and a SLURM
    (re)submission of the same folder (an advisory flock on a file beside it).

    Where the filesystem refuses flock (ENOLCK, EOPNOTSUPP: some NFS and Lustre mounts), the
    lock is an exclusive lock file instead (llem_docker.store.lockfile), with a warning, once."""
    import fcntl

    with StudyDir(study_dir).lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in NO_FLOCK:
                raise
            reason = os.strerror(exc.errno or 0)
        else:
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
            return
    if "flock" not in _warned:
        _warned.add("flock")
        _log.warning(
            "warning: the filesystem of %s does not support flock() (%s); llem-docker locks "
            "the manifest with the lock file %s instead. Keep results on a filesystem with "
            "working locks (NFS mounted with `lock`, Lustre with `-o flock`) to avoid this",
            study_dir,
            reason,
            HELD_FILE,
        )
    why = f"the lock file stands in for flock(), which this filesystem refuses: {reason}"
    with exclusive(StudyDir(study_dir).held, timeout_s=timeout_s, why=why):
        yield


def run_entry(run: PlannedRun) -> RunEntry:
    """A planned run's entry (a probe's carries its search, number and rate)."""
    cfg = run.point.config
    return RunEntry(
        index=run.index,
        cycle=run.cycle,
        backend=cfg.backend,
        run_id=run.run_id,
        config_hash=run.point.config_hash,
        swept=run.point.swept,
        search=run.search_id,
        probe=run.probe,
        request_rate=cfg.serving_options().rate if run.probe is not None else None,
    )


def utc_now() -> str:
    """UTC, ISO 8601, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunError(_Model):
    type: str
    message: str
    phase: str | None = None


class RunnerChoice(_Model):
    kind: str
    target: str | None
    source: str


class Attempt(_Model):
    """1.4: an earlier attempt at a run that `--resume` ran again: how it ended, and why."""

    state: RunState
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    error: RunError | None = None
    job: str | None = None


class RunEntry(_Model):
    index: int
    cycle: int
    backend: str
    run_id: str
    config_hash: str
    swept: dict[str, Any] = Field(default_factory=dict)
    state: RunState = "pending"
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    error: RunError | None = None
    job: str | None = None  # SLURM: <array job id>_<task id>
    # 1.4: a capacity search's probe: the search's id, the probe's number and its rate
    search: str | None = None
    probe: int | None = None
    request_rate: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)  # 1.4: earlier ones, oldest first


class SearchEntry(_Model):
    """1.4: one capacity search (`serving.search`) of the plan; its probes are in `runs`,
    added as the search makes them (docs/capacity.md)."""

    index: int
    cycle: int
    backend: str
    search_id: str
    config_hash: str
    swept: dict[str, Any] = Field(default_factory=dict)
    rule: CapacitySearch  # serving.search as the study gave it
    slo: SLO  # the objectives its probes are judged by
    most_probes: int
    state: RunState = "pending"
    started_at: str | None = None
    ended_at: str | None = None
    error: RunError | None = None


class Submission(_Model):
    """One `sbatch --array` of some of the study's runs (the first, or a resubmission)."""

    job_id: str | None = None  # None until sbatch answered
    script: str  # relative to the study folder
    runs_file: str
    run_ids: list[str]
    submitted_at: str
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float
    config_gap_s: float
    cycle_gap_s: float
    gpus: str | None = None  # --gpus, applied by the tasks too


class ThermalGaps(_Model):
    """The pauses between runs that one start of the study (the first, or a `--resume`, or a
    SLURM submission) waited, from the user config or `--no-gaps`: part of how its figures
    were taken, so a reviewer sees them and `reproduce` repeats them."""

    started_at: str  # when that start began
    config_s: float  # before a run of another config in the same cycle
    cycle_s: float  # before the first run of the next cycle

    @classmethod
    def now(cls, settings: Settings) -> ThermalGaps:
        ex = settings.execution
        return cls(
            started_at=utc_now(),
            config_s=float(ex.config_gap_seconds),
            cycle_s=float(ex.cycle_gap_seconds),
        )


def first_start_gaps(starts: list[ThermalGaps], created_at: str) -> tuple[ThermalGaps | None, bool]:
    """The gaps of a study's first start (None where they were not recorded: a study begun
    before manifest 1.5, whose later starts may have recorded theirs), and whether any start
    used others than the first recorded one."""
    first = starts[0] if starts and starts[0].started_at == created_at else None
    pair = (starts[0].config_s, starts[0].cycle_s) if starts else None
    return first, any((g.config_s, g.cycle_s) != pair for g in starts)


class Manifest(_Model):
    schema_version: str = MANIFEST_SCHEMA_VERSION
    study_name: str
    study_id: str
    design_hash: str
    study_file: str | None
    created_at: str
    updated_at: str
    owner_pid: int
    resumed_at: list[str] = Field(default_factory=list)
    # 1.5: one entry per start, the first the study's own (empty in older manifests)
    thermal_gaps: list[ThermalGaps] = Field(default_factory=list)
    state: StudyState = "running"
    executor: Executor = "inline"
    submissions: list[Submission] = Field(default_factory=list)
    execution: ExecutionConfig
    # 1.3: the profile's validity thresholds (null in older manifests: the standard profile's)
    validity: ValidityPolicy | None = None
    runners: dict[str, RunnerChoice]
    runs: list[RunEntry]
    searches: list[SearchEntry] = Field(default_factory=list)

    @classmethod
    def new(
        cls,
        plan: StudyPlan,
        study_id: str,
        study_file: str | None,
        runners: dict[str, RunnerSpec],
        gaps: ThermalGaps | None = None,
    ) -> Manifest:
        now = utc_now()
        return cls(
            study_name=plan.name,
            study_id=study_id,
            design_hash=plan.design_hash,
            study_file=study_file,
            created_at=now,
            updated_at=now,
            owner_pid=os.getpid(),
            thermal_gaps=[] if gaps is None else [gaps.model_copy(update={"started_at": now})],
            execution=plan.execution,
            validity=plan.validity,
            runners=cls.runner_choices(runners),
            runs=[run_entry(r) for r in plan.runs if r.search is None],
            searches=[
                SearchEntry(
                    index=r.index,
                    cycle=r.cycle,
                    backend=r.point.config.backend,
                    search_id=r.run_id,
                    config_hash=r.point.config_hash,
                    swept=r.point.swept,
                    rule=r.point.config.serving_options().search,
                    slo=r.point.config.serving_options().slo,
                    most_probes=r.most_runs,
                )
                for r in plan.searches
            ],
        )

    @staticmethod
    def runner_choices(runners: dict[str, RunnerSpec]) -> dict[str, RunnerChoice]:
        return {
            b: RunnerChoice(kind=s.kind, target=s.target, source=s.source)
            for b, s in runners.items()
        }

    def first_gaps(self) -> tuple[ThermalGaps | None, bool]:
        """`first_start_gaps` of this manifest."""
        return first_start_gaps(self.thermal_gaps, self.created_at)

    def entries(self) -> list[RunEntry | SearchEntry]:
        """Every run and every search: what has a state."""
        return [*self.runs, *self.searches]

    def search(self, search_id: str) -> SearchEntry:
        for s in self.searches:
            if s.search_id == search_id:
                return s
        raise KeyError(search_id)

    def probes(self, search_id: str) -> list[RunEntry]:
        """A search's probes, in the order it made them."""
        return sorted((e for e in self.runs if e.search == search_id), key=lambda e: e.probe or 0)

    def add_probe(self, run: PlannedRun) -> RunEntry:
        """The probe's entry: added, or the one a resumed search left pending."""
        with contextlib.suppress(KeyError):
            return self.entry(run.run_id)
        entry = run_entry(run)
        self.runs.append(entry)
        return entry

    def entry(self, run_id: str) -> RunEntry:
        for e in self.runs:
            if e.run_id == run_id:
                return e
        raise KeyError(run_id)

    def write(self, study_dir: Path) -> None:
        self.updated_at = utc_now()  # pydantic's own serializer: flat in the number of runs
        atomic_write_text(StudyDir(study_dir).manifest, self.model_dump_json(indent=2) + "\n")

    def start_run(self, study_dir: Path, run_id: str) -> None:
        e = self.entry(run_id)
        e.state, e.started_at = "running", utc_now()
        self.write(study_dir)

    def end_run(
        self,
        study_dir: Path,
        run_id: str,
        state: RunState,
        *,
        exit_code: int | None = None,
        error: RunError | None = None,
    ) -> None:
        e = self.entry(run_id)
        e.state, e.ended_at, e.exit_code, e.error = state, utc_now(), exit_code, error
        self.write(study_dir)

    def skip_pending(self, reason: RunError) -> None:
        for e in self.entries():
            if e.state == "pending":
                e.state, e.error = "skipped", reason

    @classmethod
    def read(cls, study_dir: Path) -> Manifest:
        return cls.model_validate_json(StudyDir(study_dir).manifest.read_text(encoding="utf-8"))
