"""Serving traces on the host (execution/trace_check.py, prepare.py): a missing or bad trace
is refused at the dry run, naming the study file, the key, the line and the fix; a run gets
the trace copied into its folder, and the config hash is the study's."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_docker.execution.prepare import prepare_run, resolve_datasets
from llem_docker.execution.runners.local import LocalRunner
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.host_api import MeasurementSettings, RunRequest
from tests.orchestrator.cliutil import invoke


@pytest.fixture(autouse=True)
def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "llem.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("LLEM_CONFIG", str(config))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def study(tmp_path: Path, trace: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nmodel: llem/tiny-llama\nbackend: vllm\nweights: dummy\nscenario: serving\n"
        f"serving: {{arrival: trace, trace: {trace}, trace_unit: ms}}\n"
        "sweep: {serving.trace_scale: [1, 2]}\n"
    )
    return path


def test_a_missing_or_bad_trace_is_refused_at_the_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(study(tmp_path, "mooncake.jsonl"))
    r = invoke(capsys, monkeypatch, "run", path, "--dry-run", "--runner", "local")
    assert r.code == 2 and "trace file `mooncake.jsonl` does not exist" in r.err, r.err
    assert "s.yaml" in r.err and "`serving.trace`" in r.err
    (tmp_path / "mooncake.jsonl").write_text('{"timestamp": 5}\n{"timestamp": 3}\n')
    r = invoke(capsys, monkeypatch, "run", path, "--dry-run", "--runner", "local")
    assert r.code == 2 and "mooncake.jsonl, line 2: timestamp 3 is earlier" in r.err, r.err
    assert "`serving.trace`" in r.err and "fix the trace at that line" in r.err
    (tmp_path / "mooncake.jsonl").write_text('{"timestamp": 3}\n{"timestamp": 5}\n')
    r = invoke(capsys, monkeypatch, "run", path, "--dry-run", "--runner", "local")
    assert r.code == 0, r.err


def test_a_run_gets_its_own_copy_of_the_trace_and_the_studys_hash(tmp_path: Path) -> None:
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "b.csv").write_text("Timestamp,Response tokens\n0,4\n1,5\n")
    plan = plan_study(load_study(study(tmp_path, "traces/b.csv")))
    found = resolve_datasets(plan, load_study(tmp_path / "s.yaml"))
    assert found["traces/b.csv"] == tmp_path / "traces" / "b.csv"
    study_dir = tmp_path / "out"
    run = plan.runs[0]
    prepare_run(study_dir, plan, run, {"vllm": LocalRunner()}, MeasurementSettings(), found)
    run_dir = study_dir / "runs" / run.run_id
    req = RunRequest.model_validate_json((run_dir / "experiment.json").read_text())
    assert req.config.serving is not None and req.config.serving.trace == "trace.csv"
    assert (run_dir / "trace.csv").read_text().startswith("Timestamp")
    assert req.run.config_hash == run.point.config.config_hash()
    assert run.point.config.serving is not None
    assert run.point.config.serving.trace == "traces/b.csv"
