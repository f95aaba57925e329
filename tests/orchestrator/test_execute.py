"""The study loop end to end: LocalRunner driving a fake harness (a real subprocess that speaks
the exchange contract), then manifest.json, study.json and results.parquet."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from rich.console import Console

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError, LlemError
from llem_docker.execution.loop import StudyInterrupted, StudyOutcome, execute_study
from llem_docker.execution.runners import Runner, RunnerFactory
from llem_docker.execution.runners.local import LocalRunner
from llem_docker.store.manifest import Manifest
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.contract import RunRequest
from tests.orchestrator.cliutil import invoke
from tests.orchestrator.fakeharness import install


class Study:
    """A study file, a user config, and the fake harness, all under tmp_path."""

    def __init__(self, tmp_path: Path, models: list[str], **execution: Any) -> None:
        self.tmp = tmp_path
        self.command = install(tmp_path)
        self.user: dict[str, Any] = {
            "output": {"results_dir": str(tmp_path / "results"), "model_cache_dir": "~/hf"},
            "measurement": {"baseline_seconds": 0.0, "carbon_intensity_gco2_kwh": 300},
            "execution": {
                "config_gap_seconds": 0,
                "cycle_gap_seconds": 0,
                "experiment_timeout_seconds": 30,
                "max_consecutive_failures": 3,
            },
        }
        self.doc: dict[str, Any] = {
            "name": "fake study",
            "backend": "pytorch",
            "weights": "dummy",
            "n_prompts": 4,
            "sweep": {"model": models},
            "execution": {"n_cycles": 1, "cycle_order": "sequential", **execution},
        }
        self.path = tmp_path / "study" / "study.yaml"
        self.path.parent.mkdir()

    def write(self) -> None:
        self.path.write_text(yaml.safe_dump(self.doc))
        (self.tmp / "config.yaml").write_text(yaml.safe_dump(self.user))

    def env(self) -> dict[str, str]:
        return {"LLEM_CONFIG": str(self.tmp / "config.yaml"), "LLEM_CARBON_INTENSITY": "123"}

    def factory(self) -> RunnerFactory:
        def make(spec: RunnerSpec, settings: Settings) -> Runner:
            assert spec.kind == "local"
            return LocalRunner(
                command=self.command,
                grace_s=0.5,
                model_cache_dir=str(settings.output.model_cache_dir),
            )

        return make

    def run(
        self, *, as_json: bool = False, factory: RunnerFactory | None = None
    ) -> tuple[StudyOutcome, str]:
        self.write()
        study = load_study(self.path)
        plan = plan_study(study)
        settings = Settings.load(self.env(), cli_runner="local")
        console = Console(file=io.StringIO(), width=160)
        outcome = execute_study(
            plan,
            study,
            settings,
            settings.runners(sorted(plan.counts())),
            console=console,
            as_json=as_json,
            runner_factory=factory or self.factory(),
        )
        out = console.file.getvalue()  # type: ignore[attr-defined]
        return outcome, out


def runs_of(outcome: StudyOutcome) -> dict[str, Path]:
    return {p.name: p for p in sorted((outcome.study_dir / "runs").iterdir())}


def test_two_runs_end_to_end(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/energy"])
    outcome, out = s.run()
    assert outcome.state == "completed" and outcome.exit_code == 0
    d = outcome.study_dir
    assert d.parent == tmp_path / "results" and d.name.startswith("fake-study_2")
    assert d.name.endswith("Z") and len(d.name) == len("fake-study_") + 16
    runs = runs_of(outcome)
    assert [n[:6] for n in runs] == ["001_c1", "002_c1"]
    for name, run_dir in runs.items():
        req = RunRequest.model_validate_json((run_dir / "experiment.json").read_text())
        assert req.run.run_id == name and req.run.study_id == d.name
        assert req.run.study_name == "fake study" and req.runner.type == "local"
        assert req.measurement.baseline_seconds == 0.0
        assert req.measurement.carbon_intensity_gco2_kwh == 123  # env beats user config
        assert req.config.model in ("fake/ok", "fake/energy")
        assert req.run.config_hash == req.config.config_hash()
        log = (run_dir / "container.log").read_text()
        assert "plain log line" in log and "a line on stderr" in log
        # the manifest was a whole file while the run was going, and said so
        assert json.loads((run_dir / "seen_manifest.json").read_text()) == {
            "study": "running",
            "run": ["running"],
        }
    man = Manifest.read(d)
    assert man.state == "completed" and man.owner_pid == os.getpid()
    assert [e.state for e in man.runs] == ["completed", "completed"]
    assert all(e.exit_code == 0 and e.error is None for e in man.runs)
    for e in man.runs:
        assert e.started_at and e.ended_at
        start, end = datetime.fromisoformat(e.started_at), datetime.fromisoformat(e.ended_at)
        assert start.utcoffset() is not None and start.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert end >= start
    assert man.runners["pytorch"].kind == "local" and man.runners["pytorch"].source == "--runner"
    study = json.loads((d / "study.json").read_text())
    assert study == outcome.study_json
    assert study["state"] == "completed" and study["design_hash"] == man.design_hash
    assert study["study_file"] == str(s.path.resolve())
    assert study["runners"]["pytorch"] == {
        "kind": "local",
        "target": None,
        "source": "--runner",
        "image_digest": None,
    }
    assert study["measurement"]["carbon_intensity_gco2_kwh"] == 123
    assert study["execution"]["seed"] is not None
    assert study["summary"] == {
        "runs": 2,
        "completed": 2,
        "failed": 0,
        "interrupted": 0,
        "skipped": 0,
        "pending": 0,
        "total_energy_j": 100.0,  # only the run that measured energy counts
        "runs_with_energy": 1,
        "total_output_tokens": 512,
        "measured_duration_s": 4.0,
    }
    first, second = study["runs"]
    assert first["energy_total_j"] is None and first["energy_per_output_token_j"] is None
    assert second["energy_total_j"] == 100.0 and second["throughput_tokens_per_s"] == 128.0
    assert first["swept"] == {"model": "fake/ok"}
    rows = pq.read_table(d / "results.parquet").to_pylist()
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in study["runs"]]
    assert [r["swept.model"] for r in rows] == ["fake/ok", "fake/energy"]
    assert rows[0]["energy_total_j"] is None and rows[0]["energy_unavailable_reason"]
    assert rows[1]["energy_total_j"] == 100.0 and rows[1]["output_tokens"] == 256
    assert "completed 001_c1" in " ".join(out.split()) and "n/a" in out and "100.0 J" in out
    assert "results:" in out


def test_failures_are_classified_and_the_study_continues(tmp_path: Path) -> None:
    s = Study(
        tmp_path,
        ["fake/error", "fake/crash", "fake/malformed", "fake/wrongrun", "fake/hang", "fake/ok"],
    )
    s.user["execution"] |= {"experiment_timeout_seconds": 1, "max_consecutive_failures": 10}
    outcome, out = s.run()
    assert outcome.state == "failed" and outcome.exit_code == 1
    man = Manifest.read(outcome.study_dir)
    states = {e.swept["model"]: e for e in man.runs}
    assert [e.state for e in man.runs] == ["failed"] * 5 + ["completed"]
    err = states["fake/error"].error
    assert err is not None and (err.type, err.phase) == ("ModelNotFoundError", "load")
    assert states["fake/error"].exit_code == 1
    crash = states["fake/crash"].error
    assert (
        crash is not None and crash.type == "HarnessCrashed" and states["fake/crash"].exit_code == 3
    )
    assert "exited with code 3" in crash.message and "Segmentation fault (pretend)" in crash.message
    assert crash.phase == "load"  # the last phase the harness announced
    for model in ("fake/malformed", "fake/wrongrun"):
        e = states[model].error
        assert e is not None and e.type == "MalformedResult", model
    timeout = states["fake/hang"].error
    assert timeout is not None and timeout.type == "Timeout" and timeout.phase == "measure"
    assert "experiment_timeout_seconds = 1 s" in timeout.message
    study = outcome.study_json
    assert study["summary"]["failed"] == 5 and study["summary"]["completed"] == 1
    assert study["summary"]["total_energy_j"] is None and study["summary"]["runs_with_energy"] == 0
    rows = pq.read_table(outcome.study_dir / "results.parquet").to_pylist()
    assert [r["error_type"] for r in rows][:2] == ["ModelNotFoundError", "HarnessCrashed"]
    assert rows[0]["duration_s"] is None and rows[-1]["duration_s"] == 2.0
    assert "Timeout" in out


def test_circuit_breaker(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/error", "fake/ok2", "fake/ok3"])
    s.user["execution"]["max_consecutive_failures"] = 1
    outcome, out = s.run()
    assert outcome.state == "aborted" and outcome.exit_code == 1
    man = Manifest.read(outcome.study_dir)
    assert [e.state for e in man.runs] == ["completed", "failed", "skipped", "skipped"]
    skipped = man.runs[2].error
    assert skipped is not None and skipped.type == "CircuitBreaker"
    assert man.runs[2].started_at is None
    assert not (outcome.study_dir / "runs" / man.runs[2].run_id / "container.log").exists()
    summary = outcome.study_json["summary"]
    assert (summary["completed"], summary["failed"], summary["skipped"]) == (1, 1, 2)
    assert "aborted" in out


def test_gaps_are_honoured(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/ok2"], n_cycles=2, cycle_order="interleaved")
    s.user["execution"] |= {"config_gap_seconds": 0.2, "cycle_gap_seconds": 1.0}
    outcome, _ = s.run()
    runs = Manifest.read(outcome.study_dir).runs
    assert [(e.cycle, e.swept["model"]) for e in runs] == [
        (1, "fake/ok"),
        (1, "fake/ok2"),
        (2, "fake/ok"),
        (2, "fake/ok2"),
    ]
    waits = [
        (datetime.fromisoformat(b.started_at or "") - datetime.fromisoformat(a.ended_at or ""))
        for a, b in itertools.pairwise(runs)
    ]
    seconds = [w.total_seconds() for w in waits]
    assert 0.2 <= seconds[0] < 0.9  # config gap (upper bounds leave room for a busy machine)
    assert 1.0 <= seconds[1] < 1.7  # cycle gap
    assert 0.2 <= seconds[2] < 0.9


def test_jsonl_dataset_is_copied_into_each_run(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/ok2"])
    (s.path.parent / "data").mkdir()
    (s.path.parent / "data" / "prompts.jsonl").write_text('{"prompt": "hello"}\n')
    s.doc["dataset"] = "data/prompts.jsonl"
    outcome, _ = s.run()
    assert outcome.state == "completed"
    for run_dir in runs_of(outcome).values():
        req = RunRequest.model_validate_json((run_dir / "experiment.json").read_text())
        assert req.config.dataset == "dataset.jsonl"
        assert (run_dir / "dataset.jsonl").read_text() == '{"prompt": "hello"}\n'


def test_missing_dataset_fails_before_anything_runs(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok"])
    s.doc["dataset"] = "nowhere/prompts.jsonl"
    with pytest.raises(ConfigError, match=r"nowhere/prompts.jsonl.*does not exist.*Fix:"):
        s.run()
    assert not (tmp_path / "results").exists()


def test_ctrl_c_records_everything_then_raises(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/hang", "fake/ok2"])
    make = s.factory()

    class CtrlC:
        """The local runner, plus a Ctrl+C once the hanging run reaches its measure phase."""

        kind = "local"

        def __init__(self, spec: RunnerSpec, settings: Settings) -> None:
            self.inner = make(spec, settings)
            self.info = self.inner.info

        def run(self, run_dir: Path, *, timeout_s: float, on_event: Any) -> Any:
            def spy(event: dict[str, Any]) -> None:
                on_event(event)
                if event.get("phase") == "measure" and (run_dir / "grandchild.pid").exists():
                    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

            return self.inner.run(run_dir, timeout_s=timeout_s, on_event=spy)

    with pytest.raises(StudyInterrupted) as info:
        s.run(factory=CtrlC)
    assert isinstance(info.value, KeyboardInterrupt)
    outcome = info.value.outcome
    assert outcome.state == "interrupted" and outcome.exit_code == 130
    man = Manifest.read(outcome.study_dir)
    assert man.state == "interrupted"
    assert [e.state for e in man.runs] == ["completed", "interrupted", "pending"]
    hang = man.runs[1]
    assert hang.error is not None and hang.error.type == "Interrupted" and hang.ended_at
    pid = int((outcome.study_dir / "runs" / hang.run_id / "grandchild.pid").read_text())
    with pytest.raises(ProcessLookupError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                raise ProcessLookupError  # dead; waiting for PID 1 to reap it
            time.sleep(0.02)
    study = json.loads((outcome.study_dir / "study.json").read_text())
    assert study["state"] == "interrupted" and study["summary"]["pending"] == 1
    assert (outcome.study_dir / "results.parquet").exists()


def test_cli_run_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/error"])
    s.write()
    monkeypatch.setattr("llem_docker.execution.runners.local.DEFAULT_COMMAND", tuple(s.command))
    for k, v in s.env().items():
        monkeypatch.setenv(k, v)
    r = invoke(capsys, monkeypatch, "run", str(s.path), "--runner", "local", "--json")
    assert r.code == 1, r.err
    data = json.loads(r.out)  # stdout holds the JSON and nothing else
    assert data["state"] == "failed" and data["summary"]["completed"] == 1
    assert data["summary"]["failed"] == 1
    assert data["runs"][1]["error"]["type"] == "ModelNotFoundError"


def test_cli_run_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Study(tmp_path, ["fake/ok"])
    s.write()
    monkeypatch.setattr("llem_docker.execution.runners.local.DEFAULT_COMMAND", tuple(s.command))
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke(capsys, monkeypatch, "run", str(s.path), "--runner", "local")
    assert r.code == 0, r.err
    assert "1/1 completed" in r.out and "results:" in r.out


def test_cli_docker_engine_unreachable_stops_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Study(tmp_path, ["fake/ok"])
    s.write()
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    r = invoke(capsys, monkeypatch, "run", str(s.path))
    assert r.code == LlemError.exit_code
    text = " ".join(r.err.split())
    assert "cannot reach the Docker engine" in text and "--runner local" in text
    assert not (tmp_path / "results").exists()
