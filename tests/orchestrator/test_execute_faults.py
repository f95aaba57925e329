"""The study loop when the engine goes away or a runner breaks: the study stops at once,
nothing stays `running`, and the message says how to resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.runners import Runner, RunnerFactory
from llem_docker.execution.runners.base import ENGINE_LOST, RunOutcome
from llem_docker.store.manifest import Manifest
from tests.orchestrator.test_execute import Study

GONE = "the Docker engine (unix:///x.sock) stopped answering during the run (gone)"


def failing_on(s: Study, call: int, outcome: RunOutcome | Exception) -> RunnerFactory:
    """The local runner with the fake harness, except that run number `call` ends so."""
    make = s.factory()
    calls = [0]

    class Breaks:
        kind = "local"

        def __init__(self, spec: RunnerSpec, settings: Settings) -> None:
            self.inner = make(spec, settings)
            self.info = self.inner.info

        def run(self, run_dir: Path, *, timeout_s: float, on_event: Any) -> RunOutcome:
            calls[0] += 1
            if calls[0] == call:
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            return self.inner.run(run_dir, timeout_s=timeout_s, on_event=on_event)

    def factory(spec: RunnerSpec, settings: Settings) -> Runner:
        return Breaks(spec, settings)

    return factory


@pytest.mark.parametrize("when", [2, 3])  # mid-study, and the last run
def test_engine_lost_aborts_the_study_with_the_resume_command(
    tmp_path: Path, when: int, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/ok2", "fake/ok3"])
    s.user["execution"]["max_consecutive_failures"] = 10
    lost = RunOutcome(exit_code=None, failure=ENGINE_LOST, detail=GONE)
    outcome, out = s.run(factory=failing_on(s, when, lost))
    assert outcome.state == "aborted" and outcome.exit_code == 1
    man = Manifest.read(outcome.study_dir)
    assert man.state == "aborted"
    states = [e.state for e in man.runs]
    assert states == (
        ["completed", "failed", "skipped"] if when == 2 else ["completed"] * 2 + ["failed"]
    )
    failed = man.runs[when - 1]
    assert failed.error is not None and failed.error.type == ENGINE_LOST and failed.ended_at
    resume = f"llem-docker run {s.path.resolve()} --resume {outcome.study_dir}"
    assert failed.error.message.startswith(GONE) and resume in failed.error.message
    assert "docker info" in failed.error.message
    if when == 2:
        skipped = man.runs[2].error
        assert skipped is not None and skipped.type == "CircuitBreaker"
        assert "went away" in skipped.message and resume in skipped.message
        assert "the study is aborted" in " ".join(out.split())
    err = " ".join(capsys.readouterr().err.split())
    assert "aborted:" in err and "went away" in err and resume in err
    assert outcome.study_json["state"] == "aborted"


def test_a_runner_that_raises_leaves_nothing_running(tmp_path: Path) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/ok2"])
    with pytest.raises(RuntimeError, match="runner bug"):
        s.run(factory=failing_on(s, 2, RuntimeError("runner bug")))
    (study_dir,) = (tmp_path / "results").iterdir()
    man = Manifest.read(study_dir)
    assert man.state == "failed"
    assert [e.state for e in man.runs] == ["completed", "failed"]
    err = man.runs[1].error
    assert err is not None and (err.type, err.message) == ("RuntimeError", "runner bug")
