"""manifest.json: built from a plan, every transition written atomically, UTC timestamps."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.store.layout import MANIFEST_FILE
from llem_docker.store.manifest import Manifest, RunError, ThermalGaps
from llem_docker.store.study_result import build_study_result
from llem_docker.study.model import ExecutionConfig, StudyConfig
from llem_docker.study.plan import plan_study
from llem_harness.contract import MeasurementSettings, RunnerInfo


def manifest() -> Manifest:
    study = StudyConfig(
        name="m",
        base={"model": "llem/tiny-llama", "weights": "dummy"},
        backends=("pytorch",),
        experiments=({"batch_size": 1}, {"batch_size": 2}),
    )
    plan = plan_study(study, ExecutionConfig(n_cycles=2, cycle_order="interleaved"))
    spec = RunnerSpec("local", None, "--runner")
    return Manifest.new(plan, "m_20260101T000000Z", "/x/m.yaml", {"pytorch": spec})


def utc(stamp: str | None) -> datetime:
    assert stamp is not None
    when = datetime.fromisoformat(stamp)
    assert when.utcoffset() == timedelta(0)
    return when


def test_new_manifest_from_a_plan() -> None:
    m = manifest()
    assert m.schema_version == "1.5" and m.state == "running" and m.owner_pid == os.getpid()
    assert m.execution.n_cycles == 2 and m.execution.seed is not None
    assert m.validity is not None and m.validity.profile == "standard"  # the thresholds
    assert [(e.index, e.cycle, e.state) for e in m.runs] == [
        (1, 1, "pending"),
        (2, 1, "pending"),
        (3, 2, "pending"),
        (4, 2, "pending"),
    ]
    assert m.runs[1].swept == {"backend": "pytorch", "batch_size": 2}
    assert all(e.started_at is None and e.exit_code is None for e in m.runs)
    assert m.runners["pytorch"].model_dump() == {
        "kind": "local",
        "target": None,
        "source": "--runner",
    }
    utc(m.created_at)


def test_transitions_are_written_atomically(tmp_path: Path) -> None:
    m = manifest()
    m.write(tmp_path)
    first = m.runs[0].run_id
    m.start_run(tmp_path, first)
    on_disk = Manifest.read(tmp_path)
    assert on_disk.entry(first).state == "running"
    assert utc(on_disk.entry(first).started_at) <= utc(on_disk.updated_at)
    err = RunError(type="Timeout", message="too slow", phase="measure")
    m.end_run(tmp_path, first, "failed", exit_code=143, error=err)
    e = Manifest.read(tmp_path).entry(first)
    assert (e.state, e.exit_code, e.error) == ("failed", 143, err)
    assert utc(e.ended_at) >= utc(e.started_at)
    m.skip_pending(RunError(type="CircuitBreaker", message="stop"))
    m.state = "aborted"
    m.write(tmp_path)
    again = Manifest.read(tmp_path)
    assert again.state == "aborted"
    assert [r.state for r in again.runs] == ["failed", "skipped", "skipped", "skipped"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_FILE]  # no temp files left
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["study_id"] == m.study_id


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    m = manifest()
    data = m.model_dump(mode="json") | {"surprise": 1}
    with pytest.raises(ValidationError):
        Manifest.model_validate(data)
    with pytest.raises(KeyError):
        m.entry("no-such-run")


def test_thermal_gaps_are_recorded_and_an_older_manifest_has_none(tmp_path: Path) -> None:
    m = manifest()
    assert m.thermal_gaps == []  # none given: a library caller's
    settings = Settings.load(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    m.thermal_gaps = [ThermalGaps.now(settings)]
    assert (m.thermal_gaps[0].config_s, m.thermal_gaps[0].cycle_s) == (60.0, 300.0)  # defaults
    data = m.model_dump(mode="json")
    del data["thermal_gaps"]  # as 1.4 wrote it
    assert Manifest.model_validate(data).thermal_gaps == []


def test_summary_of_a_study_with_nothing_measured_is_null_not_zero() -> None:
    m = manifest()
    for e in m.runs[:2]:
        e.state = "failed"
        e.error = RunError(type="HarnessCrashed", message="boom")
    m.state = "interrupted"
    result = build_study_result(
        m,
        {},
        MeasurementSettings(),
        {"pytorch": RunnerInfo(type="local")},
        ended_at="2026-01-01T00:00:00+00:00",
        wall_time_s=1.23456,
    )
    s = result.summary
    assert (s.runs, s.completed, s.failed, s.pending) == (4, 0, 2, 2)
    assert s.total_energy_j is None and s.runs_with_energy == 0
    assert s.total_output_tokens is None and s.measured_duration_s is None
    assert result.runs[0].energy_total_j is None and result.runs[0].error is not None
    assert result.runners["pytorch"].image_digest is None and result.wall_time_s == 1.235
