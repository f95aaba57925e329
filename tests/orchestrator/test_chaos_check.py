"""check_study and compare_shape (tests/docker/chaos_check.py), the assertion of the chaos
test through Docker, on synthetic study folders: a sound folder passes, and each kind of
damage a fault could leave is named. Without these, a check that can never fail would pass
the chaos test as well."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_docker.store.collect import assemble
from llem_docker.store.manifest import Attempt, Manifest, RunError
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.contract import ExperimentResult, atomic_write_json
from tests.docker.chaos_check import Key, check_study, compare_shape
from tests.orchestrator.test_report import make_study


def _study(tmp_path: Path, name: str = "synth") -> tuple[Path, list[Key]]:
    """A completed folder of 6 runs (batch 1 and 4, 3 cycles) and its planned keys."""
    d = make_study(tmp_path, name=name)
    plan = plan_study(load_study(tmp_path / f"{name}.yaml"))
    return d, [(r.point.config_hash, r.cycle) for r in plan.runs]


def _rewrite(d: Path, m: Manifest) -> None:
    """The manifest, then study.json and results.parquet from it: the three agree."""
    m.write(d)
    assemble(d, m)


def _problems(d: Path, planned: list[Key], **kw: object) -> str:
    return "\n".join(check_study(d, planned=planned, **kw))  # type: ignore[arg-type]


def test_a_sound_folder_passes(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    assert check_study(d, planned=planned, containers=lambda _: []) == []
    assert check_study(d) == []  # the manifest's own list stands in for the plan
    shutil.copyfile(tmp_path / "synth.yaml", d / "study.yaml")
    assert check_study(d) == []  # the plan rebuilt from the folder's copy of the study


def test_a_lost_run_is_named(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    lost = m.runs[2]
    lost.state, lost.error = "failed", RunError(type="Boom", message="x")
    (d / "runs" / lost.run_id / "result.json").unlink()
    _rewrite(d, m)
    said = _problems(d, planned)
    assert f"run lost: config {lost.config_hash[:12]}, cycle {lost.cycle}" in said
    assert f"{lost.run_id} is failed" in said and "the study is completed" not in said
    extra = [*planned, ("f" * 64, 1)]  # a planned run the manifest never had
    assert "run lost: config ffffffffffff, cycle 1" in _problems(d, extra)


def test_a_run_measured_twice_is_named(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    twin = m.runs[0].model_copy(update={"run_id": "007_c1_twin", "index": 7})
    src = d / "runs" / m.runs[0].run_id
    shutil.copytree(src, d / "runs" / twin.run_id)
    res = ExperimentResult.model_validate_json((src / "result.json").read_text())
    res.run.run_id, res.run.index = twin.run_id, 7
    atomic_write_json(d / "runs" / twin.run_id / "result.json", res.model_dump(mode="json"))
    m.runs.append(twin)
    _rewrite(d, m)
    said = _problems(d, planned)
    key = f"config {twin.config_hash[:12]}, cycle {twin.cycle}"
    assert f"measured twice: {key} has 2 completed runs" in said
    assert f"measured twice: 2 result.json files for {key}" in said


def test_an_earlier_completed_attempt_is_a_second_measurement(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    m.runs[1].attempts.append(
        Attempt(state="completed", started_at="2026-01-01T00:00:00+00:00",
                error=RunError(type="ResultLost", message="its result.json was missing"))
    )  # fmt: skip
    _rewrite(d, m)
    assert f"measured twice: {m.runs[1].run_id}'s attempt 1 had completed" in _problems(d, planned)


def test_a_result_of_an_earlier_attempt_is_named(tmp_path: Path) -> None:
    """A container of a killed llem-docker that wrote its result.json into the folder of the
    run's next attempt: measured before that attempt began."""
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    for e in m.runs:
        e.started_at = "2025-12-31T23:59:59.000+00:00"  # the results say 2026-01-01T00:00
    _rewrite(d, m)
    assert check_study(d, planned=planned) == []
    m.runs[3].started_at = "2026-01-01T00:00:05.000+00:00"
    _rewrite(d, m)
    said = _problems(d, planned)
    assert f"{m.runs[3].run_id}: its result.json was measured at" in said
    assert "a result of an earlier attempt" in said


def test_an_error_json_beside_a_result_is_named(tmp_path: Path) -> None:
    """What a harness orphaned by a SIGKILL of llem-docker (local runner) left: its
    error.json, written into the folder --resume had made for the run's next attempt."""
    d, planned = _study(tmp_path)
    run_id = Manifest.read(d).runs[2].run_id
    (d / "runs" / run_id / "error.json").write_text('{"type": "BrokenPipeError"}')
    assert f"{run_id} completed, yet its folder holds an error.json too" in _problems(d, planned)


def test_attempts_need_a_cause_and_the_expected_count(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    hit, other = m.runs[0], m.runs[1]
    hit.attempts.append(
        Attempt(state="failed", started_at="2026-01-01T00:00:00+00:00",
                error=RunError(type="KilledExternally", message="docker kill"))
    )  # fmt: skip
    other.attempts.append(Attempt(state="running", started_at="2026-01-01T00:00:00+00:00"))
    _rewrite(d, m)
    said = _problems(d, planned)
    assert f"{other.run_id}: attempt 1 (running) has no cause" in said
    assert hit.run_id not in said
    fits = {hit.run_id: [frozenset({"KilledExternally"})], other.run_id: [None]}
    assert "earlier attempts" not in _problems(d, planned, attempts=fits)
    wrong = {hit.run_id: [frozenset({"Interrupted"})], other.run_id: [None, None]}
    said = _problems(d, planned, attempts=wrong)
    assert f"{hit.run_id}: attempt 1's cause is KilledExternally, expected one of" in said
    assert f"{other.run_id} keeps 1 earlier attempts; 2 expected" in said
    said = _problems(d, planned, attempts={hit.run_id: [None]})  # `other`'s was not expected
    assert f"{other.run_id} keeps 1 earlier attempts; 0 expected" in said


def test_results_parquet_that_disagrees_with_the_manifest(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    path = d / "results.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 5), path)  # a row short
    assert "results.parquet's 5 rows (id, state, config, cycle) differ" in _problems(d, planned)
    durations = table.column("duration_s").to_pylist()
    durations[2] = 99.0
    i = table.schema.get_field_index("duration_s")
    pq.write_table(table.set_column(i, "duration_s", pa.array(durations)), path)
    run_id = table.column("run_id")[2].as_py()
    assert f"results.parquet's duration of {run_id} is not its result.json's" in _problems(
        d, planned
    )


def test_study_json_that_disagrees_with_the_manifest(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    data = json.loads((d / "study.json").read_text())
    data["runs"][1]["state"] = "failed"
    data["summary"]["completed"] = 5
    (d / "study.json").write_text(json.dumps(data))
    said = _problems(d, planned)
    assert "study.json's runs (id, state, config, cycle) differ from the manifest's" in said
    assert "study.json's summary counts 5/6 completed, the manifest 6/6" in said


@pytest.mark.parametrize("name", ["manifest.json", "study.json", "results.parquet"])
def test_a_torn_file_is_named(tmp_path: Path, name: str) -> None:
    d, planned = _study(tmp_path)
    whole = (d / name).read_bytes()
    (d / name).write_bytes(whole[: len(whole) // 2])  # a write cut short, not atomic
    assert f"{name} cannot be read" in _problems(d, planned)


def test_the_run_folders_must_be_the_manifests(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    m = Manifest.read(d)
    (d / "runs" / "999_c9_stray").mkdir()
    shutil.rmtree(d / "runs" / m.runs[4].run_id)
    said = _problems(d, planned)
    assert "a run folder the manifest does not list: runs/999_c9_stray" in said
    assert f"no run folder for {m.runs[4].run_id}" in said
    failed = m.runs[5]
    failed.state = "failed"  # its result.json stays: which is it?
    _rewrite(d, m)
    assert f"{failed.run_id} is failed but its folder holds a result.json" in _problems(d, planned)


def test_temporary_files_and_locks_left_behind(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    run_id = Manifest.read(d).runs[0].run_id
    (d / ".manifest.json.k9x2.tmp").write_text('{"half": ')
    (d / "runs" / run_id / ".result.json.a.tmp").write_text("{")
    (d / ".running.lock").write_text('{"pid": 1}')
    (d / ".manifest.lock.held").write_text("")
    said = _problems(d, planned)
    assert "temporary file left: .manifest.json.k9x2.tmp" in said
    assert f"temporary file left: runs/{run_id}/.result.json.a.tmp" in said
    assert "lock left behind: .running.lock" in said
    assert "lock left behind: .manifest.lock.held" in said


def test_a_held_manifest_lock_is_named_an_idle_one_is_not(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    (d / ".manifest.lock").touch()  # `status` leaves it; it only must not be held
    assert check_study(d, planned=planned) == []
    with (d / ".manifest.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert ".manifest.lock is held by a live process" in _problems(d, planned)


def test_a_process_or_container_left_is_named(tmp_path: Path) -> None:
    d, planned = _study(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(d / "runs")]
    )  # stands in for a harness or llem-docker that outlived the study
    try:
        assert f"process left: pid {proc.pid}" in _problems(d, planned)
    finally:
        proc.kill()
        proc.wait()
    assert "process left" not in _problems(d, planned)
    said = _problems(d, planned, containers=lambda study_id: [f"llem-{study_id}-001"])
    assert f"container left: llem-{d.name}-001" in said


def test_compare_shape(tmp_path: Path) -> None:
    d, _ = _study(tmp_path / "a")
    ref, _ = _study(tmp_path / "b")
    assert compare_shape(d, ref, rows=6) == []
    study = json.loads((d / "study.json").read_text())
    for run in study["runs"]:
        run["swept"] = {}  # the same keys at the top, another tree below
    (d / "study.json").write_text(json.dumps(study))
    assert compare_shape(d, ref, rows=6) == [
        "study.json: its key tree differs from the undisturbed run's"
    ]
    shutil.copyfile(ref / "study.json", d / "study.json")
    said = "\n".join(compare_shape(d, ref, rows=50))
    assert "results.parquet has 6 rows, 50 planned" in said
    assert "study.json lists 6 runs, 50 planned" in said
    run_id = Manifest.read(d).runs[0].run_id
    (d / "runs" / run_id / "timeseries.parquet").unlink()
    (d / "extra.txt").write_text("")
    said = "\n".join(compare_shape(d, ref, rows=6))
    assert f"runs/{run_id}: " in said and "top level: " in said
    (d / "results.parquet").write_bytes(b"PAR1")
    assert "results.parquet (or the reference's) cannot be read" in "\n".join(
        compare_shape(d, ref, rows=6)
    )
