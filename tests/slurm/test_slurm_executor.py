"""The SLURM executor against a real single-node cluster: submit a study of the tiny model
(local runner), refuse to collect while tasks run, cancel the job part-way, see the
cancelled and never-started runs in `status`, resubmit only those with one command, and
collect a complete StudyResult. Also: sbatch refusing a job is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from llem_harness.contract import ExperimentResult
from tests.conftest import TINY_STUDY
from tests.slurm.conftest import EXE

SECRET = "hf_" + "SlurmTaskSecret0000000000000"
STUDY = {
    "name": "slurm-tiny",
    **TINY_STUDY,
    "sweep": {"batch_size": [1, 4]},
    "execution": {"n_cycles": 1, "cycle_order": "sequential"},
}


def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "runners": {"pytorch": "local"},
                "output": {
                    "results_dir": str(tmp_path / "results"),
                    "model_cache_dir": str(tmp_path / "hf"),
                    "engine_cache_dir": str(tmp_path / "engines"),
                },
                "execution": {"config_gap_seconds": 1, "experiment_timeout_seconds": 600},
                "slurm": {"gpus_per_run": 0},
            }
        )
    )
    env = {**os.environ, "LLEM_CONFIG": str(cfg), "HF_TOKEN": SECRET}
    return study, env


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def status(study_dir: Path, env: dict[str, str]) -> dict[str, object]:
    proc = cli(env, "status", str(study_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def states(manifest: dict[str, object]) -> list[str]:
    return [r["state"] for r in manifest["runs"]]  # type: ignore[index, union-attr]


def test_submit_cancel_resubmit_collect(cluster: None, tmp_path: Path) -> None:
    study, env = setup(tmp_path)
    proc = cli(env, "run", str(study), "--executor", "slurm", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sub = json.loads(proc.stdout)
    study_dir, job = Path(sub["study_dir"]), sub["job_id"]
    script = (study_dir / "slurm" / "submit-1.sbatch").read_text()
    assert "#SBATCH --array=0-1%1" in script and "#SBATCH --exclusive" in script
    assert "--gres" not in script

    early = cli(env, "collect", str(study_dir))
    assert early.returncode == 2 and "still queued or running" in early.stderr

    # Wait until the first run's harness is measuring or loading, then cancel the whole job.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        m = status(study_dir, env)
        if states(m)[0] == "running" and (study_dir / "runs").glob("*/container.log"):
            logs = list((study_dir / "runs").glob("*/container.log"))
            if logs and '"phase"' in logs[0].read_text():
                break
        time.sleep(0.5)
    else:
        pytest.fail(f"the first task never started: {states(m)}")
    subprocess.run(["scancel", job], check=True, timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        m = status(study_dir, env)
        if "running" not in states(m) and "queued" not in states(m):
            break
        time.sleep(1)
    assert states(m) == ["interrupted", "failed"], m
    first, second = m["runs"]  # type: ignore[misc]
    assert first["error"]["type"] == "SlurmCancelled" and first["job"] == f"{job}_0"
    assert second["error"]["type"] == "SlurmLost"
    assert "ended without writing any record" in second["error"]["message"]

    partial = cli(env, "collect", str(study_dir))
    assert partial.returncode == 1 and "0/2 completed" in partial.stdout

    again = cli(env, "run", str(study), "--executor", "slurm", "--resume", str(study_dir),
                "--wait")  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2/2 completed" in again.stdout
    m = status(study_dir, env)
    assert m["state"] == "completed" and len(m["submissions"]) == 2  # type: ignore[arg-type]
    assert m["submissions"][1]["run_ids"] == [r["run_id"] for r in m["runs"]]  # type: ignore[index]
    for run in m["runs"]:  # type: ignore[union-attr]
        res = ExperimentResult.model_validate_json(
            (study_dir / "runs" / run["run_id"] / "result.json").read_text()
        )
        assert res.tokens.output == 4 * 16 and res.throughput_tokens_per_s > 0
        assert res.energy.total_j is None and res.energy.unavailable_reason
    study_json = json.loads((study_dir / "study.json").read_text())
    assert study_json["summary"]["completed"] == 2 and study_json["state"] == "completed"
    assert pq.read_table(study_dir / "results.parquet").num_rows == 2
    for path in study_dir.rglob("*"):  # the secret reached the tasks' env, never a file
        if path.is_file() and path.suffix != ".parquet":
            assert SECRET not in path.read_text(errors="replace"), path


def test_sbatch_refusal_is_a_clear_error(cluster: None, tmp_path: Path) -> None:
    study, env = setup(tmp_path)
    proc = cli(env, "run", str(study), "--executor", "slurm", "--partition", "no-such-partition")
    assert proc.returncode == 1
    assert "sbatch refused" in proc.stderr and "no-such-partition" in " ".join(proc.stderr.split())
    (study_dir,) = (tmp_path / "results").iterdir()
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert manifest["state"] == "failed" and manifest["submissions"][0]["job_id"] is None
    assert len(list((study_dir / "runs").glob("*/experiment.json"))) == 2


def test_apptainer_runner_inside_array_tasks(cluster: None, tmp_path: Path, test_sif: Path) -> None:
    """The seeds' HPC path, end to end: each array task runs its run through the real
    `apptainer exec` of the SIF that `make sif` built (the secret reaches the task's
    environment, never a file)."""
    study, env = setup(tmp_path)
    doc = yaml.safe_load(study.read_text())
    doc["sweep"] = {"batch_size": [1, 4]}
    study.write_text(yaml.safe_dump(doc))
    env |= {"LLEM_RUNNER_PYTORCH": f"apptainer:{test_sif}"}
    proc = cli(env, "run", str(study), "--executor", "slurm", "--wait", "--json", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["state"] == "completed" and summary["runners"]["pytorch"]["kind"] == "apptainer"
    (study_dir,) = (tmp_path / "results").iterdir()
    runs = sorted((study_dir / "runs").glob("*/result.json"))
    assert len(runs) == 2
    for path in runs:
        res = ExperimentResult.model_validate_json(path.read_text())
        assert res.runner.type == "apptainer" and res.runner.image == str(test_sif)
        assert res.tokens.output > 0
        log = (path.parent / "container.log").read_text()
        assert '"event": "done"' in log
    for path in study_dir.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            assert SECRET not in path.read_text(errors="replace"), path
