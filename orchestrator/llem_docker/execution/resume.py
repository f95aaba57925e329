"""`llem-docker run STUDY --resume RESULTS_DIR`: finish a study that stopped part-way.

The results folder must belong to the same study design (its manifest's `design_hash`). The
plan is rebuilt with the execution settings the manifest recorded, so run ids line up. Runs
with a valid result.json stay as they are; every other run folder is emptied and run again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import ValidationError

from llem_docker.config.settings import RunnerSpec
from llem_docker.errors import ConfigError
from llem_docker.store.layout import RUNS_DIR, RunDir, StudyDir
from llem_docker.store.manifest import (
    MANIFEST_SCHEMA_VERSION,
    Attempt,
    Manifest,
    RunEntry,
    RunError,
    ThermalGaps,
)
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import ExperimentResult

FIX_NEW = "run the study without --resume to start a new results folder"


def read_prior(results_dir: Path, source: str = "--resume") -> Manifest:
    """The manifest of the folder to resume, or a ConfigError that says what is wrong."""
    path = StudyDir(results_dir).manifest
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist",
            source=source,
            fix="give the study's results folder, the one that holds manifest.json",
        )
    try:
        return Manifest.read(results_dir)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{path} is not a readable llem-docker manifest ({first})",
            source=source,
            fix=FIX_NEW,
        ) from None


def check_same_design(prior: Manifest, plan: StudyPlan, study_file: str | Path) -> None:
    if prior.design_hash != plan.design_hash:
        raise ConfigError(
            f"the study file no longer matches the results folder: its design hash is "
            f"{plan.design_hash[:12]}…, the folder's is {prior.design_hash[:12]}… (the "
            "experiments were edited since the study started)",
            source=study_file,
            fix=f"restore the study file as it was, or {FIX_NEW}",
        )
    planned = [r.run_id for r in plan.runs if r.search is None]
    searches = [r.run_id for r in plan.searches]
    recorded = [e.run_id for e in prior.runs if e.search is None]
    if planned != recorded or searches != [s.search_id for s in prior.searches]:
        raise ConfigError(
            "the rebuilt plan's runs differ from the manifest's",
            source=study_file,
            fix=FIX_NEW,
        )


def reopen(
    study_dir: Path, prior: Manifest, runners: dict[str, RunnerSpec], gaps: ThermalGaps
) -> tuple[Manifest, dict[str, ExperimentResult], list[str]]:
    """Keep completed runs (with their results), reset the rest; the ids to run again (a
    search not completed is among them: it replays its completed probes' verdicts, then
    goes on from the probe that did not complete, which is reset as any other run)."""
    sweep_temporary(study_dir)
    results: dict[str, ExperimentResult] = {}
    again: list[str] = []
    reset: set[str] = set()  # searches with a probe to run again
    for entry in prior.runs:
        run_dir = StudyDir(study_dir).run(entry.run_id).path
        kept = _valid_result(run_dir, entry.run_id) if entry.state == "completed" else None
        if kept is not None:
            results[entry.run_id] = kept
            continue
        if entry.search is None:
            again.append(entry.run_id)
        else:
            reset.add(entry.search)
        if entry.started_at is not None:  # it ran, or began to: kept, with its cause
            entry.attempts.append(_attempt(entry))
        entry.state, entry.started_at, entry.ended_at = "pending", None, None
        entry.exit_code, entry.error, entry.job = None, None, None
        if run_dir.exists():
            shutil.rmtree(run_dir)
    for search in prior.searches:
        if search.state != "completed" or search.search_id in reset:
            again.append(search.search_id)
            search.state, search.started_at, search.ended_at = "pending", None, None
            search.error = None
    manifest = prior.model_copy(
        update={
            "state": "running",
            "owner_pid": os.getpid(),
            "schema_version": MANIFEST_SCHEMA_VERSION,  # what it holds from here on
            "resumed_at": [*prior.resumed_at, gaps.started_at],
            "thermal_gaps": [*prior.thermal_gaps, gaps],
            "runners": Manifest.runner_choices(runners),
        }
    )
    return manifest, results, again


def sweep_temporary(study_dir: Path) -> list[Path]:
    """The temporary files a writer killed mid-write left behind (an atomic write's
    `.<name>.<random>.tmp`, results.parquet's `.results.parquet.tmp`), removed; only while
    this process holds the study's run lock, so no live writer owns them."""
    found = [*study_dir.glob(".*.tmp"), *study_dir.glob(f"{RUNS_DIR}/*/.*.tmp")]
    for path in found:
        path.unlink(missing_ok=True)
    return found


LOST = RunError(
    type="OrchestratorLost",
    message="llem-docker stopped while this run was running and could not record how it "
    "ended (it was killed, the machine went down, or the disk under the results folder "
    "filled up): the run was started again by --resume",
)


def _attempt(entry: RunEntry) -> Attempt:
    """The entry's last attempt; one left `running` lost its llem-docker, and one recorded
    `completed` whose result.json is gone or unreadable says so."""
    error = entry.error
    if entry.state in ("running", "queued") and error is None:
        error = LOST
    elif entry.state == "completed":
        error = RunError(type="ResultLost", message="its result.json was missing or unreadable")
    return Attempt(
        state=entry.state,
        started_at=entry.started_at,
        ended_at=entry.ended_at,
        exit_code=entry.exit_code,
        error=error,
        job=entry.job,
    )


def _valid_result(run_dir: Path, run_id: str) -> ExperimentResult | None:
    try:
        res = ExperimentResult.model_validate_json(RunDir(run_dir).result.read_text("utf-8"))
    except (OSError, ValidationError, ValueError):
        return None
    return res if res.run.run_id == run_id else None
