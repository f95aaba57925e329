"""`run --resume`: completed runs are kept, the rest run again; an edited study is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.cliutil import invoke
from tests.orchestrator.test_execute import Study


def _cli(
    s: Study, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> Any:
    s.write()
    monkeypatch.setattr("llem_docker.execution.runners.local.DEFAULT_COMMAND", tuple(s.command))
    for k, v in s.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("COLUMNS", "200")
    return invoke(capsys, monkeypatch, "run", str(s.path), "--runner", "local", *args)


def _manifest(d: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d / "manifest.json").read_text())
    return data


def test_resume_keeps_completed_runs_and_reruns_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Study(tmp_path, ["fake/ok", "fake/crash"])
    assert _cli(s, capsys, monkeypatch).code == 1
    (d,) = (tmp_path / "results").iterdir()
    before = {r["run_id"]: r for r in _manifest(d)["runs"]}
    ok_id, crash_id = (r["run_id"] for r in _manifest(d)["runs"])
    ok_result = (d / "runs" / ok_id / "result.json").read_bytes()

    r = _cli(s, capsys, monkeypatch, "--resume", str(d))
    assert r.code == 1, r.err  # the crashing run fails again
    assert "1 runs (1 already completed)" in r.out
    after = {x["run_id"]: x for x in _manifest(d)["runs"]}
    assert after[ok_id] == before[ok_id]  # untouched, not rerun
    assert (d / "runs" / ok_id / "result.json").read_bytes() == ok_result
    assert after[crash_id]["state"] == "failed"
    assert after[crash_id]["started_at"] != before[crash_id]["started_at"]
    m = _manifest(d)
    assert len(m["resumed_at"]) == 1 and m["state"] == "failed"
    study = json.loads((d / "study.json").read_text())
    assert study["summary"]["completed"] == 1 and study["summary"]["failed"] == 1
    assert len(list((tmp_path / "results").iterdir())) == 1  # no new folder


def test_resume_refuses_an_edited_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Study(tmp_path, ["fake/ok"])
    assert _cli(s, capsys, monkeypatch).code == 0
    (d,) = (tmp_path / "results").iterdir()
    s.doc["n_prompts"] = 5
    r = _cli(s, capsys, monkeypatch, "--resume", str(d))
    assert r.code == 2
    text = " ".join(r.err.split())
    assert "no longer matches" in text and "without --resume" in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ((), "does not exist"),
        (("--cycles", "2"), "cannot change a study that is being resumed"),
    ],
)
def test_resume_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, ...],
    needle: str,
) -> None:
    s = Study(tmp_path, ["fake/ok"])
    r = _cli(s, capsys, monkeypatch, "--resume", str(tmp_path / "nowhere"), *extra)
    assert r.code == 2
    assert needle in " ".join(r.err.split())


def test_resume_refuses_a_folder_without_a_readable_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "broken"
    d.mkdir()
    (d / "manifest.json").write_text("{not json")
    r = _cli(Study(tmp_path, ["fake/ok"]), capsys, monkeypatch, "--resume", str(d))
    assert r.code == 2 and "not a readable llem-docker manifest" in " ".join(r.err.split())
