"""What a study folder must look like after any number of faults and resumes: the checks of
issue 34, item 1, each a sentence naming what is wrong (an empty list: the folder is sound).

Read only from disk (and, where a caller passes it, the engine's container list), so the same
checks judge a chaos study through Docker (tests/docker/test_chaos.py, bench/chaos.py) and
synthetic folders in the unit tests (tests/orchestrator/test_chaos_check.py).

- every planned run (config hash x cycle) has exactly one completed result: none lost, none
  measured twice (two entries or folders of one key, a result.json from an earlier attempt,
  or an earlier attempt that had completed);
- every earlier attempt is kept in the run's `attempts`, with a cause (`error.type` and
  `message`), and, where the caller knows which faults hit which run, with the right cause;
- manifest.json, study.json and results.parquet parse and agree with each other and with
  the run folders;
- nothing is left behind: no temporary file, no `.running.lock` or fallback lock file, no
  held manifest lock, no process naming the folder, no container of the study.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from llem_docker.store.layout import HELD_FILE, LOCK_FILE, RUN_LOCK_FILE, StudyDir
from llem_docker.store.manifest import Manifest, RunEntry
from llem_docker.store.study_result import StudyResult
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.host_api import ExperimentResult, RunRequest

Key = tuple[str, int]  # (config hash, cycle): a planned run, whatever its index or id
# The causes an attempt may have (None: any cause will do), one per earlier attempt.
Causes = Sequence[Collection[str] | None]
# The run lock (its holder removes it on the way out) and the fallback lock files: any of them
# in a finished folder was left by a process that died. The flock()ed manifest lock file stays
# by design; it must only not be held.
LOCKS = frozenset({RUN_LOCK_FILE, f"{RUN_LOCK_FILE}.held", HELD_FILE})
SLACK_S = 0.5  # between the manifest's clock and the harness's (one machine, same clock)


def check_study(
    study_dir: Path,
    *,
    planned: Collection[Key] | None = None,
    attempts: Mapping[str, Causes] | None = None,
    containers: Callable[[str], list[str]] | None = None,
) -> list[str]:
    """Every problem of a finished study folder. `planned`: the keys the study must hold
    (default: rebuilt from the folder's study.yaml, else the manifest's own list); `attempts`:
    for each run id, the earlier attempts it must keep and their allowed causes (runs not
    named must keep none); `containers(study_id)`: the names of its containers still known
    to the engine."""
    problems: list[str] = []
    manifest = _manifest(study_dir, problems)
    if manifest is None:
        return problems + leftovers(study_dir, study_dir.name, containers)
    if manifest.study_id != study_dir.name:
        problems.append(f"the manifest's study id {manifest.study_id} is not the folder's name")
    keys = planned if planned is not None else _planned(study_dir, manifest, problems)
    problems += _once_each(manifest, keys)
    problems += _run_folders(study_dir, manifest)
    problems += _attempts(manifest, attempts)
    problems += _study_json(study_dir, manifest)
    problems += _results_parquet(study_dir, manifest)
    return problems + leftovers(study_dir, manifest.study_id, containers)


def _manifest(study_dir: Path, problems: list[str]) -> Manifest | None:
    try:
        return Manifest.read(study_dir)
    except (OSError, ValidationError, ValueError) as exc:
        problems.append(f"manifest.json cannot be read: {str(exc).splitlines()[0]}")
        return None


def _planned(study_dir: Path, manifest: Manifest, problems: list[str]) -> list[Key]:
    """The plan rebuilt from the study file the folder keeps, with the execution the manifest
    recorded (as --resume rebuilds it); the manifest's own list where there is no copy."""
    source = StudyDir(study_dir).study_source
    if not source.is_file():
        return [(e.config_hash, e.cycle) for e in manifest.runs]
    plan = plan_study(load_study(source), manifest.execution)
    if plan.design_hash != manifest.design_hash:
        problems.append("the manifest's design hash is not that of the folder's study.yaml")
    return [(r.point.config_hash, r.cycle) for r in plan.runs if r.search is None]


def _once_each(manifest: Manifest, planned: Collection[Key]) -> list[str]:
    """Each planned key: one entry, completed; no entry outside the plan."""
    problems = []
    if manifest.state != "completed":
        problems.append(f"the study is {manifest.state}, not completed")
    entries = Counter((e.config_hash, e.cycle) for e in manifest.runs)
    done = Counter((e.config_hash, e.cycle) for e in manifest.runs if e.state == "completed")
    for key in planned:
        where = f"config {key[0][:12]}, cycle {key[1]}"
        if done[key] == 0:
            problems.append(f"run lost: {where} has no completed run")
        elif done[key] > 1:
            problems.append(f"measured twice: {where} has {done[key]} completed runs")
        if entries[key] > 1:
            problems.append(f"{where} has {entries[key]} manifest entries")
    for key in set(entries) - set(planned):
        problems.append(f"a run outside the plan: config {key[0][:12]}, cycle {key[1]}")
    for e in manifest.runs:
        if e.state != "completed":
            problems.append(f"{e.run_id} is {e.state}")
    return problems


def _run_folders(study_dir: Path, manifest: Manifest) -> list[str]:
    """The folders are the manifest's runs; each completed run's result.json is its own,
    measured by its last attempt, with no error.json beside it (one written by a process of
    an earlier attempt); no other run has a result.json."""
    layout = StudyDir(study_dir)
    problems = []
    ids = {e.run_id for e in manifest.runs}
    found = {p.name for p in layout.runs.iterdir()} if layout.runs.is_dir() else set()
    problems += [f"a run folder the manifest does not list: runs/{n}" for n in found - ids]
    problems += [f"no run folder for {i}" for i in sorted(ids - found)]
    measured: Counter[Key] = Counter()
    for e in manifest.runs:
        run = layout.run(e.run_id)
        if e.run_id not in found:
            continue
        if _request(run.experiment) != e.run_id:
            problems.append(f"{e.run_id}: experiment.json is missing, unreadable or not its own")
        res = _result(run.result)
        if res is None:
            if e.state == "completed" or run.result.exists():
                problems.append(f"{e.run_id}: result.json is missing or unreadable")
            continue
        if e.state != "completed":
            problems.append(f"{e.run_id} is {e.state} but its folder holds a result.json")
        elif run.error.exists():  # the harness clears both at start and writes one
            problems.append(f"{e.run_id} completed, yet its folder holds an error.json too")
        if (res.run.run_id, res.config_hash, res.run.cycle) != (
            e.run_id,
            e.config_hash,
            e.cycle,
        ):
            problems.append(f"{e.run_id}: result.json belongs to another run")
        measured[(res.config_hash, res.run.cycle)] += 1
        problems += _measured_by_last_attempt(e, res)
    problems += [
        f"measured twice: {n} result.json files for config {k[0][:12]}, cycle {k[1]}"
        for k, n in measured.items()
        if n > 1
    ]
    return problems


def _request(path: Path) -> str | None:
    try:
        return RunRequest.model_validate_json(path.read_text("utf-8")).run.run_id
    except (OSError, ValidationError, ValueError):
        return None


def _result(path: Path) -> ExperimentResult | None:
    try:
        return ExperimentResult.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def _measured_by_last_attempt(e: RunEntry, res: ExperimentResult) -> list[str]:
    """A result.json measured before its entry's last start came from an earlier attempt (a
    container or harness of a killed llem-docker that wrote on)."""
    if e.started_at is None:
        return []
    began, measured = _when(e.started_at), _when(res.started_at)
    if began is None or measured is None:
        return [f"{e.run_id}: unreadable time stamps ({e.started_at!r}, {res.started_at!r})"]
    if (began - measured).total_seconds() > SLACK_S:
        return [
            f"{e.run_id}: its result.json was measured at {res.started_at}, before its last "
            f"attempt began ({e.started_at}): a result of an earlier attempt"
        ]
    return []


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _attempts(manifest: Manifest, expected: Mapping[str, Causes] | None) -> list[str]:
    """Each earlier attempt has a cause; none had completed (that would be a measurement
    thrown away, so the run was measured twice); with `expected`, the count and the causes
    are those of the faults that hit each run."""
    problems = []
    for e in manifest.runs:
        for n, a in enumerate(e.attempts, 1):
            if a.error is None or not a.error.type or not a.error.message:
                problems.append(f"{e.run_id}: attempt {n} ({a.state}) has no cause")
            if a.state == "completed":
                problems.append(f"measured twice: {e.run_id}'s attempt {n} had completed")
            if a.started_at is None:
                problems.append(f"{e.run_id}: attempt {n} has no start time")
        if expected is None:
            continue
        want = list(expected.get(e.run_id, ()))
        if len(e.attempts) != len(want):
            problems.append(
                f"{e.run_id} keeps {len(e.attempts)} earlier attempts; {len(want)} expected"
            )
            continue
        for n, (a, allowed) in enumerate(zip(e.attempts, want, strict=True), 1):
            got = a.error.type if a.error is not None else None
            if allowed is not None and got not in allowed:
                problems.append(
                    f"{e.run_id}: attempt {n}'s cause is {got}, expected one of {sorted(allowed)}"
                )
    return problems


def _study_json(study_dir: Path, manifest: Manifest) -> list[str]:
    path = StudyDir(study_dir).study_json
    try:
        study = StudyResult.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        return [f"study.json cannot be read: {str(exc).splitlines()[0]}"]
    problems = []
    ours = (manifest.study_id, manifest.design_hash, manifest.state)
    if (study.study_id, study.design_hash, study.state) != ours:
        problems.append(
            f"study.json says {study.study_id} / {study.state}, the manifest "
            f"{manifest.study_id} / {manifest.state}"
        )
    if _rows(study.runs) != _rows(manifest.runs):
        problems.append("study.json's runs (id, state, config, cycle) differ from the manifest's")
    completed = sum(e.state == "completed" for e in manifest.runs)
    if (study.summary.runs, study.summary.completed) != (len(manifest.runs), completed):
        problems.append(
            f"study.json's summary counts {study.summary.completed}/{study.summary.runs} "
            f"completed, the manifest {completed}/{len(manifest.runs)}"
        )
    return problems


def _rows(runs: Sequence[Any]) -> list[tuple[str, str, str, int]]:
    return [(r.run_id, r.state, r.config_hash, r.cycle) for r in runs]


def _results_parquet(study_dir: Path, manifest: Manifest) -> list[str]:
    path = StudyDir(study_dir).results_parquet
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return [f"results.parquet cannot be read: {str(exc).splitlines()[0]}"]
    cols = ("run_id", "state", "config_hash", "cycle", "duration_s")
    if missing := [c for c in cols if c not in table.column_names]:
        return [f"results.parquet has no column {', '.join(missing)}"]
    data = table.select(list(cols)).to_pydict()
    rows = list(zip(*(data[c] for c in cols[:4]), strict=True))
    if rows != _rows(manifest.runs):
        return [
            f"results.parquet's {table.num_rows} rows (id, state, config, cycle) differ from "
            f"the manifest's {len(manifest.runs)} runs"
        ]
    problems = []
    layout = StudyDir(study_dir)
    for run_id, duration in zip(data["run_id"], data["duration_s"], strict=True):
        res = _result(layout.run(run_id).result)
        if res is not None and duration != res.duration_s:
            problems.append(f"results.parquet's duration of {run_id} is not its result.json's")
    return problems


def leftovers(
    study_dir: Path, study_id: str | None, containers: Callable[[str], list[str]] | None
) -> list[str]:
    """Temporary files, locks, processes and containers the study left behind."""
    layout = StudyDir(study_dir)
    problems = [
        f"temporary file left: {p.relative_to(study_dir)}"
        for p in sorted(study_dir.rglob("*"))
        if p.name.endswith(".tmp")
    ]
    for p in sorted(study_dir.iterdir()):
        if p.name in LOCKS:
            problems.append(f"lock left behind: {p.name}")
        elif p.name.startswith(".") and p.name != LOCK_FILE and not p.name.endswith(".tmp"):
            problems.append(f"stray hidden file: {p.name}")
    if layout.lock.exists() and _held(layout.lock):
        problems.append(f"{LOCK_FILE} is held by a live process")
    problems += [f"process left: {p}" for p in processes_naming(study_dir, study_id)]
    if containers is not None and study_id is not None:
        problems += [f"container left: {name}" for name in containers(study_id)]
    return problems


def _held(path: Path) -> bool:
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def processes_naming(study_dir: Path, study_id: str | None) -> list[str]:
    """Live processes (but this one) whose command line names the folder or the study id:
    an llem-docker, a harness, a `docker` call left running."""
    needles = [str(study_dir)] + ([study_id] if study_id else [])
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(n in argv for n in needles):
                found.append(f"pid {proc.name}: {argv.strip()[:200]}")
    return found


def compare_shape(study_dir: Path, reference: Path, *, rows: int) -> list[str]:
    """`study_dir` has the shape of `reference`, an undisturbed run of the same study (any
    number of cycles): the same top-level files, each run folder the same file names, the
    same results.parquet schema and manifest keys, the same key tree of study.json and of
    the result.json files (tests/integration/shape.py, as the quickstart test compares
    them); and `rows` runs."""
    from tests.integration.shape import study_shape

    problems = []

    def names(d: Path) -> set[str]:
        return {p.name for p in d.iterdir() if p.name != LOCK_FILE}

    if names(study_dir) != names(reference):
        problems.append(f"top level: {sorted(names(study_dir))} vs {sorted(names(reference))}")
    ref_runs = [names(p) for p in StudyDir(reference).runs.iterdir()]
    if not ref_runs or any(r != ref_runs[0] for r in ref_runs):
        problems.append("the reference's run folders do not share one shape")
    for run in sorted(StudyDir(study_dir).runs.iterdir()):
        if ref_runs and names(run) != ref_runs[0]:
            problems.append(f"runs/{run.name}: {sorted(names(run))} vs {sorted(ref_runs[0])}")
    problems += _same_files(study_dir, reference, rows)
    try:
        mine, ref = study_shape(study_dir), study_shape(reference)
    except (OSError, ValueError, pa.ArrowException):
        return problems  # _same_files named the file that cannot be read
    for key in sorted(mine):
        if mine[key] != ref.get(key):
            problems.append(f"{key}: its key tree differs from the undisturbed run's")
    return problems


def _same_files(study_dir: Path, reference: Path, rows: int) -> list[str]:
    """results.parquet's schema (its metadata included) and the JSON files' keys."""
    import json

    mine, ref = StudyDir(study_dir), StudyDir(reference)
    try:
        schema, table = pq.read_schema(ref.results_parquet), pq.read_table(mine.results_parquet)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return [f"results.parquet (or the reference's) cannot be read: {exc}"]
    problems = []
    if not table.schema.equals(schema, check_metadata=True):
        problems.append("results.parquet's schema differs from the undisturbed run's")
    if table.num_rows != rows:
        problems.append(f"results.parquet has {table.num_rows} rows, {rows} planned")
    for name in (mine.study_json.name, mine.manifest.name):
        try:
            a, b = (json.loads((d / name).read_text()) for d in (study_dir, reference))
        except (OSError, ValueError) as exc:
            problems.append(f"{name} (or the reference's) cannot be read: {exc}")
            continue
        if set(a) != set(b) or set(a["runs"][0]) != set(b["runs"][0]):
            problems.append(f"{name}'s keys differ from the undisturbed run's")
        if len(a["runs"]) != rows:
            problems.append(f"{name} lists {len(a['runs'])} runs, {rows} planned")
    return problems
