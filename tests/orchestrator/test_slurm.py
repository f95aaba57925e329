"""SLURM executor pieces without a cluster: time limits, the array script, squeue/sacct
parsing, and how `status` folds task records and SLURM's view into the manifest (the real
cluster is exercised in tests/slurm)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.slurm import scheduler
from llem_docker.execution.slurm.script import (
    SlurmOptions,
    format_time,
    options_from,
    render_script,
    time_to_s,
)
from llem_docker.execution.slurm.status import refresh
from llem_docker.store.layout import TASK_FILE
from llem_docker.store.manifest import Manifest, Submission
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study

SECRET = "hf_" + "NeverInTheScript000000000000"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 5400), ("5:30", 330), ("01:30:00", 5400), ("1-00", 86400), ("2-03:04", 183840),
     ("1-00:00:30", 86430), ("UNLIMITED", None), ("0", None)],
)  # fmt: skip
def test_time_limits(text: str, seconds: int | None) -> None:
    assert time_to_s(text) == seconds


def test_format_time_rounds_up_to_minutes() -> None:
    assert format_time(3600 + 60 + 300 + 1) == "01:07:00"
    assert format_time(2 * 86400 + 90) == "2-00:02:00"


def settings(tmp_path: Path, text: str = "", **env: str) -> Settings:
    cfg = tmp_path / "xdg" / "llenergymeasure" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text)
    return Settings.load({"XDG_CONFIG_HOME": str(tmp_path / "xdg"), **env})


def test_options_flags_over_user_config(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        "slurm: {partition: gpu, account: lab, max_parallel: 2,\n"
        "        setup: ['module load apptainer']}\n",
    )
    o = options_from(s, partition="a100", account=None, time=None, gpus_per_run=None,
                     max_parallel=None, needed_s=3960)  # fmt: skip
    assert (o.partition, o.account, o.max_parallel, o.gpus_per_run) == ("a100", "lab", 2, 1)
    assert o.time == "01:06:00" and o.setup == ("module load apptainer",)


def test_a_time_limit_too_short_or_malformed_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    kw = {"partition": None, "account": None, "gpus_per_run": None, "max_parallel": None}
    with pytest.raises(ConfigError, match=r"shorter than one run may take") as info:
        options_from(s, time="30", needed_s=3960, **kw)  # type: ignore[arg-type]
    assert "--time" in info.value.render()
    with pytest.raises(ConfigError, match=r"`soon` is not a SLURM time limit"):
        options_from(s, time="soon", needed_s=60, **kw)  # type: ignore[arg-type]


def test_script(tmp_path: Path) -> None:
    opts = SlurmOptions(partition="gpu", account="lab", time="01:06:00", gpus_per_run=2,
                        max_parallel=3, python="/opt/venv/bin/python",
                        setup=("module load apptainer",), sbatch_args=("--qos=high",))  # fmt: skip
    text = render_script(opts, study_dir=tmp_path / "s 1", study_id="s_1", design_hash="ab" * 32,
                         runs_file=tmp_path / "s 1" / "slurm" / "submit-1.runs", n_tasks=4,
                         submission=1)  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in ("#SBATCH --job-name=llem-s_1", "#SBATCH --array=0-3%3", "#SBATCH --exclusive",
                 "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --time=01:06:00", "#SBATCH --qos=high", "module load apptainer",
                 f"#SBATCH --output={tmp_path}/s 1/slurm/submit-1-%A_%a.out"):  # fmt: skip
        assert want in lines
    assert lines[-1] == (
        f"exec /opt/venv/bin/python -m llem_docker.execution.slurm.task '{tmp_path}/s 1' "
        f"'{tmp_path}/s 1/slurm/submit-1.runs'"
    )
    cpu = render_script(SlurmOptions(gpus_per_run=0, exclusive=False, time="10"),
                        study_dir=tmp_path, study_id="x", design_hash="0" * 64,
                        runs_file=tmp_path / "r", n_tasks=1, submission=2)  # fmt: skip
    assert "--gres" not in cpu and "--exclusive" not in cpu and "--partition" not in cpu


def test_parse_squeue_and_sacct() -> None:
    q = scheduler.parse_squeue("12_0|RUNNING|None\n12_1|PENDING|JobArrayTaskLimit\n")
    assert q["12_0"].state == "RUNNING" and q["12_1"].detail == "JobArrayTaskLimit"
    a = scheduler.parse_sacct(
        "12_0|COMPLETED|0:0\n12_1|CANCELLED by 0|0:15\n12_[2-3%1]|PENDING|0:0\n13|FAILED|1:0\n"
    )
    assert set(a) == {"12_0", "12_1"} and a["12_1"].state == "CANCELLED"


# -- status: task records + scheduler → manifest ------------------------------------------------
def slurm_study(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("model: llem/tiny-llama\nbackend: pytorch\nsweep: {batch_size: [1, 2, 4, 8]}\n")
    plan = plan_study(load_study(path))
    study_dir = tmp_path / "s_1"
    (study_dir / "runs").mkdir(parents=True)
    m = Manifest.new(plan, "s_1", None, {"pytorch": RunnerSpec("local", None, "test")})
    ids = [r.run_id for r in plan.runs][:4]
    m.executor = "slurm"
    m.submissions.append(Submission(script="slurm/submit-1.sbatch", runs_file="submit-1.runs",
                                    run_ids=ids, submitted_at="x", job_id="77", timeout_s=60,
                                    config_gap_s=0, cycle_gap_s=0))  # fmt: skip
    for i, rid in enumerate(ids):
        m.entry(rid).state, m.entry(rid).job = "queued", f"77_{i}"
        (study_dir / "runs" / rid).mkdir()
    m.write(study_dir)
    return study_dir


def task(study_dir: Path, run_id: str, **fields: object) -> None:
    (study_dir / "runs" / run_id / TASK_FILE).write_text(json.dumps({"run_id": run_id, **fields}))


def test_status_folds_tasks_and_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = slurm_study(tmp_path)
    ids = [e.run_id for e in Manifest.read(d).runs][:4]
    task(d, ids[0], job="77_0", state="completed", started_at="a", ended_at="b", exit_code=0)
    task(d, ids[1], job="77_1", state="running", started_at="c")  # died without a word
    err = {"type": "Timeout", "message": "no result", "phase": "measure"}
    task(
        d, ids[2], job="77_2", state="failed", started_at="d", ended_at="e", exit_code=1, error=err
    )
    queue = {"77_3": scheduler.TaskState("77_3", "PENDING", "JobArrayTaskLimit")}
    monkeypatch.setattr(scheduler, "squeue", lambda name: queue)
    monkeypatch.setattr(scheduler, "sacct", lambda jobs: None)  # accounting off
    r = refresh(d)
    states = [e.state for e in r.manifest.runs[:4]]
    assert states == ["completed", "failed", "failed", "queued"] and r.active == 1
    lost = r.manifest.runs[1].error
    assert lost and lost.type == "SlurmLost" and "slurm/submit-1-77_1.out" in lost.message
    assert r.manifest.runs[2].error and r.manifest.runs[2].error.type == "Timeout"
    assert r.manifest.state == "running" and any("accounting" in n for n in r.notes)
    assert Manifest.read(d).runs[1].state == "failed"  # written back

    queue.clear()  # the last task ran and wrote its record
    task(d, ids[3], job="77_3", state="completed", started_at="f", ended_at="g", exit_code=0)
    r = refresh(d)
    assert r.active == 0 and r.manifest.state == "failed"


def test_status_keeps_states_when_squeue_cannot_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = slurm_study(tmp_path)
    monkeypatch.setattr(scheduler, "squeue", lambda name: None)
    monkeypatch.setattr(scheduler, "sacct", lambda jobs: None)
    r = refresh(d)
    assert [e.state for e in r.manifest.runs[:4]] == ["queued"] * 4
    assert any("squeue did not answer" in n for n in r.notes)


def test_a_task_record_of_an_earlier_submission_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = slurm_study(tmp_path)
    first = Manifest.read(d).runs[0].run_id
    task(d, first, job="70_0", state="completed", started_at="a", ended_at="b", exit_code=0)
    monkeypatch.setattr(
        scheduler, "squeue", lambda name: {"77_0": scheduler.TaskState("77_0", "RUNNING")}
    )
    monkeypatch.setattr(scheduler, "sacct", lambda jobs: {})
    assert refresh(d).manifest.runs[0].state == "running"


def test_a_secret_in_the_script_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path, "slurm: {setup: ['module load apptainer', 'export HF_TOKEN=abc']}\n")
    kw = {"partition": None, "account": None, "time": None, "gpus_per_run": None}
    with pytest.raises(ConfigError, match="sets a secret") as info:
        options_from(s, max_parallel=None, needed_s=60, **kw)  # type: ignore[arg-type]
    assert "slurm.setup[1]" in info.value.render() and "abc" not in info.value.render()


def test_a_late_record_corrects_a_lost_run_and_squeue_beats_a_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = slurm_study(tmp_path)
    ids = [e.run_id for e in Manifest.read(d).runs][:2]
    queue: dict[str, scheduler.TaskState] = {}
    monkeypatch.setattr(scheduler, "squeue", lambda name: queue)
    monkeypatch.setattr(scheduler, "sacct", lambda jobs: None)
    assert refresh(d).manifest.runs[0].error.type == "SlurmLost"  # type: ignore[union-attr]
    task(d, ids[0], job="77_0", state="completed", started_at="a", ended_at="b", exit_code=0)
    assert refresh(d).manifest.runs[0].state == "completed"  # the shared FS caught up
    task(d, ids[1], job="77_1", state="interrupted", started_at="c", ended_at="d",
         error={"type": "SlurmCancelled", "message": "preempted"})  # fmt: skip
    queue["77_1"] = scheduler.TaskState("77_1", "PENDING", "BeginTime")  # requeued
    m = refresh(d).manifest
    assert m.runs[1].state == "queued" and m.runs[1].error is None


def test_submit_needs_sbatch_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llem_docker.execution.slurm.submit import SlurmSubmitError, submit_study

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    s = settings(tmp_path, f"output: {{results_dir: {tmp_path}/results}}\n")
    with pytest.raises(SlurmSubmitError, match="sbatch` is not on PATH"):
        submit_study(None, None, s, {}, SlurmOptions(), console=None)  # type: ignore[arg-type]
    assert not (tmp_path / "results").exists()
