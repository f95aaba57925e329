"""classify(): the precedence between what the run folder holds and how the runner ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.execution.classify import classify
from llem_docker.execution.runners.base import ENGINE_LOST, KILLED_EXTERNALLY, RunOutcome

RUN = "001_c1_pytorch_abcdef12"


def error_json(run_dir: Path, kind: str, phase: str = "measure") -> None:
    doc = {"type": kind, "message": f"{kind} happened", "traceback": "", "phase": phase}
    (run_dir / "error.json").write_text(json.dumps(doc))


def test_engine_lost_outranks_the_harness_terminated(tmp_path: Path) -> None:
    # A stopping engine SIGTERMs its containers: the harness's record hides the cause.
    error_json(tmp_path, "Terminated")
    out = RunOutcome(exit_code=None, failure=ENGINE_LOST, detail="engine stopped answering")
    got = classify(RUN, tmp_path, out, "warmup", 60)
    assert got.state == "failed" and got.error is not None
    assert (got.error.type, got.error.phase) == (ENGINE_LOST, "measure")
    assert got.error.message == "engine stopped answering"


def test_sigterm_nobody_at_llem_docker_sent_is_killed_externally(tmp_path: Path) -> None:
    error_json(tmp_path, "Terminated", phase="warmup")
    got = classify(RUN, tmp_path, RunOutcome(exit_code=143), "warmup", 60)
    assert got.error is not None and got.error.type == KILLED_EXTERNALLY
    assert "SIGTERM" in got.error.message and "docker stop" in got.error.message
    assert "--resume" in got.error.message and got.error.phase == "warmup"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"timed_out": True}, "Timeout"), ({"interrupted": True}, "Interrupted")],
)
def test_our_own_stop_is_not_killed_externally(
    tmp_path: Path, flags: dict[str, bool], expected: str
) -> None:
    error_json(tmp_path, "Terminated")
    got = classify(RUN, tmp_path, RunOutcome(exit_code=137, **flags), "measure", 60)
    assert got.error is not None and got.error.type == expected


def test_sigkill_seen_by_the_runner(tmp_path: Path) -> None:
    out = RunOutcome(exit_code=137, failure=KILLED_EXTERNALLY, detail="SIGKILL, exit 137")
    got = classify(RUN, tmp_path, out, "load", 60)
    assert got.error is not None and (got.error.type, got.error.phase) == (
        KILLED_EXTERNALLY,
        "load",
    )
    assert got.error.message == "SIGKILL, exit 137"


def test_a_real_harness_error_outranks_a_later_sigkill(tmp_path: Path) -> None:
    error_json(tmp_path, "ModelNotFoundError", phase="load")
    out = RunOutcome(exit_code=137, failure=KILLED_EXTERNALLY, detail="SIGKILL")
    got = classify(RUN, tmp_path, out, "load", 60)
    assert got.error is not None and got.error.type == "ModelNotFoundError"


def test_oom_outranks_killed_externally(tmp_path: Path) -> None:
    out = RunOutcome(exit_code=137, oom_killed=True, detail="OOM")
    got = classify(RUN, tmp_path, out, "load", 60)
    assert got.error is not None and got.error.type == "OOMKilled"
