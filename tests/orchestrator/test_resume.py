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


def _first_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Study, Path]:
    """A study of a run that completes and one that crashes, run once: its folder."""
    s = Study(tmp_path, ["fake/ok", "fake/crash"])
    assert _cli(s, capsys, monkeypatch).code == 1
    (d,) = (tmp_path / "results").iterdir()
    return s, d


def test_resume_keeps_completed_runs_and_reruns_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, d = _first_start(tmp_path, capsys, monkeypatch)
    before = {r["run_id"]: r for r in _manifest(d)["runs"]}
    ok_id, crash_id = (r["run_id"] for r in _manifest(d)["runs"])
    ok_result = (d / "runs" / ok_id / "result.json").read_bytes()

    r = _cli(s, capsys, monkeypatch, "--resume", str(d))
    assert r.code == 1, r.err  # the crashing run fails again
    assert "1 run (1 already completed)" in r.out
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


def test_each_start_records_its_thermal_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, d = _first_start(tmp_path, capsys, monkeypatch)
    (first,) = _manifest(d)["thermal_gaps"]
    assert (first["config_s"], first["cycle_s"]) == (0.0, 0.0)
    assert first["started_at"] == _manifest(d)["created_at"]
    s.user["execution"]["config_gap_seconds"] = 0.01  # this start's user config differs
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 1
    m = _manifest(d)
    assert [(g["config_s"], g["cycle_s"]) for g in m["thermal_gaps"]] == [(0.0, 0.0), (0.01, 0.0)]
    assert m["thermal_gaps"][1]["started_at"] == m["resumed_at"][0]
    study = json.loads((d / "study.json").read_text())
    assert study["schema_version"] == "1.2" and study["thermal_gaps"] == m["thermal_gaps"]
    r = invoke(capsys, monkeypatch, "report", str(d), "--format", "md", "--no-plots")
    assert r.code == 0, r.err
    text = " ".join((d / "report" / "report.md").read_text().split())
    assert "thermal gaps between runs: 0 s before another config, 0 s before a new cycle; a " \
        "later start (--resume) used others" in text  # fmt: skip
    r = invoke(capsys, monkeypatch, "report", str(d))  # the terminal's table says it too
    assert "thermal gaps between runs: 0 s before another config" in " ".join(r.out.split())


def test_a_study_begun_before_the_gaps_were_recorded_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, d = _first_start(tmp_path, capsys, monkeypatch)
    m = _manifest(d)
    del m["thermal_gaps"]  # as manifest 1.4 was written
    (d / "manifest.json").write_text(json.dumps(m | {"schema_version": "1.4"}))
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 1
    m = _manifest(d)
    assert m["schema_version"] == "1.5" and len(m["thermal_gaps"]) == 1  # the resume's only
    r = invoke(capsys, monkeypatch, "report", str(d), "--format", "md", "--no-plots")
    assert r.code == 0, r.err
    text = " ".join((d / "report" / "report.md").read_text().split())
    assert "thermal gaps between runs: not recorded (a study begun before manifest 1.5); its " \
        "later starts (--resume): 0 s and 0 s" in text  # fmt: skip


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


def test_every_earlier_attempt_is_kept_with_its_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, d = _first_start(tmp_path, capsys, monkeypatch)
    crash_id = _manifest(d)["runs"][1]["run_id"]
    first = _manifest(d)["runs"][1]
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 1
    # the manifest as a SIGKILL of llem-docker leaves it: the run `running`, no error
    m = _manifest(d)
    m["runs"][1]["state"], m["runs"][1]["error"], m["runs"][1]["ended_at"] = "running", None, None
    (d / "manifest.json").write_text(json.dumps(m))
    torn = [
        d / ".manifest.json.k9x2.tmp",
        d / "runs" / m["runs"][0]["run_id"] / ".result.json.a.tmp",
    ]
    for path in torn:  # what a writer killed mid-write leaves
        path.write_text('{"half": ')
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 1
    assert not any(p.exists() for p in torn)
    entry = _manifest(d)["runs"][1]
    assert entry["run_id"] == crash_id and [a["state"] for a in entry["attempts"]] == [
        "failed",
        "running",
    ]
    assert entry["attempts"][0]["started_at"] == first["started_at"]
    assert entry["attempts"][0]["error"] == first["error"]  # the crash, with its message
    assert entry["attempts"][1]["error"]["type"] == "OrchestratorLost"
    assert _manifest(d)["runs"][0]["attempts"] == []  # completed once, never again


def test_a_second_resume_of_a_running_study_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys

    s = Study(tmp_path, ["fake/crash"])
    assert _cli(s, capsys, monkeypatch).code == 1
    (d,) = (tmp_path / "results").iterdir()
    before = (d / "manifest.json").read_bytes()
    holder = subprocess.Popen(  # another llem-docker, holding the folder's run lock
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         "from llem_docker.store.runlock import running\n"
         "with running(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)", str(d)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = _cli(s, capsys, monkeypatch, "--resume", str(d))
        assert r.code == 2 and "another llem-docker is running this study now" in r.err
        assert f"pid {holder.pid}" in r.err and "Fix: wait for it to finish" in r.err
        assert (d / "manifest.json").read_bytes() == before  # nothing touched
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel releases the lock with its process
        holder.wait()
    assert (d / ".running.lock").exists()  # a dead holder's file: not a held lock
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 1
    assert not (d / ".running.lock").exists()  # released and removed on the way out


def test_a_torn_results_file_is_rebuilt_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    s, d = _first_start(tmp_path, capsys, monkeypatch)
    whole = pq.read_table(d / "results.parquet").to_pydict()
    for name in ("results.parquet", "study.json"):  # torn: cut in half
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 2])
    r = invoke(capsys, monkeypatch, "status", str(d))
    assert r.code == 0, r.err
    assert "results.parquet could not be read" in r.out and "study.json could not be read" in r.out
    assert "rebuilt from the run folders" in r.out
    assert pq.read_table(d / "results.parquet").to_pydict()["run_id"] == whole["run_id"]
    assert json.loads((d / "study.json").read_text())["summary"]["completed"] == 1
    (d / "results.parquet").write_bytes(b"PAR1 torn")
    r = _cli(s, capsys, monkeypatch, "--resume", str(d))
    assert "results.parquet could not be read" in r.out and "rebuilt from the run folders" in r.out
    assert pq.read_table(d / "results.parquet").num_rows == 2  # rebuilt when the study ended


def test_a_full_disk_stops_the_study_with_the_way_to_finish_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from llem_docker.store.manifest import Manifest

    real = Manifest.write
    calls = [0]

    def full_after_three(self: Manifest, study_dir: Path) -> None:
        calls[0] += 1
        if calls[0] > 3:  # the first run recorded, then the disk fills
            raise OSError(errno.ENOSPC, "No space left on device", str(study_dir / "x.tmp"))
        real(self, study_dir)

    s = Study(tmp_path, ["fake/ok", "fake/ok2"])
    monkeypatch.setattr(Manifest, "write", full_after_three)
    r = _cli(s, capsys, monkeypatch)
    assert r.code == 1 and "Traceback" not in r.err
    assert "the disk is full (No space left on device)" in r.err
    assert "--resume" in r.err and "Fix: free space" in r.err
    monkeypatch.setattr(Manifest, "write", real)
    (d,) = (tmp_path / "results").iterdir()
    assert _cli(s, capsys, monkeypatch, "--resume", str(d)).code == 0
    assert _manifest(d)["state"] == "completed"
