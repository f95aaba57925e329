"""Real studies through the Docker runner: one fresh container per run, nothing left behind."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from llem_docker.execution.runners.docker import DockerRunner
from llem_docker.execution.runners.docker_engine import ContainerOptions
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult, standalone_request
from tests.docker.conftest import (
    IMAGE,
    cli_env,
    manifest,
    run_cli,
    study_dir,
    tiny_study,
    user_config,
    write_study,
)

pytestmark = pytest.mark.docker


def test_two_by_two_sweep(tmp_path: Path, test_image: str) -> None:
    study = write_study(
        tmp_path / "sweep.yaml",
        tiny_study("sweep", sweep={"batch_size": [1, 2], "max_output_tokens": [4, 8]}),
    )
    env = cli_env(user_config(tmp_path), HF_TOKEN="hf_secretvalue_do_not_leak_123456")
    proc = run_cli(["run", str(study), "--json"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = study_dir(tmp_path / "results")
    man = manifest(out)
    assert man["state"] == "completed"
    assert [r["state"] for r in man["runs"]] == ["completed"] * 4
    outputs = set()
    for run in man["runs"]:
        run_dir = out / "runs" / run["run_id"]
        res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
        assert res.tokens.output == res.config.n_prompts * res.config.max_output_tokens
        assert res.throughput_tokens_per_s > 0
        assert res.energy.total_j is None and res.energy.unavailable_reason
        assert res.runner.type == "docker" and res.runner.image == IMAGE
        outputs.add((res.config.batch_size, res.config.max_output_tokens))
        log = (run_dir / "container.log").read_text()
        assert '"event": "phase"' in log
        for f in run_dir.iterdir():  # written by the container, owned by the caller
            assert f.stat().st_uid == os.getuid(), f
    assert outputs == {(1, 4), (1, 8), (2, 4), (2, 8)}
    summary = json.loads(proc.stdout)
    assert summary["summary"]["completed"] == 4
    runner = summary["runners"]["pytorch"]
    assert runner["kind"] == "docker" and runner["image_digest"].startswith("sha256:")
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 4
    # The token from the environment reached no file of the study, and no output.
    secret = "hf_secretvalue_do_not_leak"
    assert secret not in proc.stdout + proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_container_runs_as_the_given_user(tmp_path: Path, test_image: str) -> None:
    """The harness runs as the orchestrator's uid:gid (here an unprivileged one, which the
    image knows nothing about), so every file it writes belongs to that user."""
    uid = gid = 4321
    run_dir = tmp_path / "study" / "runs" / "001_c1_pytorch_owner"
    run_dir.mkdir(parents=True)
    fields = {k: v for k, v in tiny_study("owner").items() if k not in ("name", "execution")}
    cfg = ExperimentConfig.model_validate(fields)
    req = standalone_request(cfg, run_id=run_dir.name)
    (run_dir / "experiment.json").write_text(req.model_dump_json())
    (tmp_path / "hf").mkdir()
    for p in (run_dir, run_dir / "experiment.json", tmp_path / "hf"):
        os.chown(p, uid, gid)
    opts = ContainerOptions(
        image=IMAGE,
        gpus=[],
        shm_size="256m",
        memory=None,
        hf_cache_dir=tmp_path / "hf",
        hf_hub_offline=True,
        engine_cache_dir=tmp_path / "hf",
        user=f"{uid}:{gid}",
    )
    import docker

    events: list[dict[str, Any]] = []
    outcome = DockerRunner(docker.from_env(), opts).run(
        run_dir, timeout_s=300, on_event=events.append
    )
    assert outcome.exit_code == 0, (run_dir / "container.log").read_text()[-2000:]
    assert [e["event"] for e in events][-1] == "done"
    written = [p for p in run_dir.iterdir() if p.name not in ("experiment.json", "container.log")]
    assert {p.name for p in written} >= {"result.json", "timeseries.parquet"}
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {(uid, gid)}


def test_gpu_request_on_a_cpu_host_names_the_setting(tmp_path: Path, test_image: str) -> None:
    study = write_study(tmp_path / "gpu.yaml", tiny_study("gpu", sweep={"batch_size": [1, 2]}))
    env = cli_env(user_config(tmp_path, docker={"gpus": "all"}))
    proc = run_cli(["run", str(study)], env)
    assert proc.returncode == 1
    man = manifest(study_dir(tmp_path / "results"))
    first, second = man["runs"]
    assert first["error"]["type"] == "GpuUnavailable"
    assert "docker.gpus: none" in first["error"]["message"]
    assert "--gpus none" in first["error"]["message"]
    assert second["state"] == "skipped" and man["state"] == "aborted"
    # --gpus none on the command line overrides the user config.
    proc = run_cli(["run", str(study), "--gpus", "none"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_unreachable_engine_fails_before_anything_runs(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s.yaml", tiny_study("s"))
    env = cli_env(user_config(tmp_path), DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    proc = run_cli(["run", str(study)], env, timeout=120)
    assert proc.returncode != 0
    text = " ".join(proc.stderr.split())
    assert "cannot reach the Docker engine" in text and "Nothing was run" in text
    assert "--runner local" in text and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def _labelled(engine: Any, owner_pid: int, name: str) -> Any:
    return engine.containers.run(
        IMAGE,
        ["sleep", "300"],
        name=name,
        detach=True,
        labels={
            "llem.study": "reaper-test",
            "llem.run": name,
            "llem.owner_pid": str(owner_pid),
            "llem.host": socket.gethostname(),
        },
    )


def test_containers_of_dead_orchestrators_are_reaped(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = _labelled(engine, dead.pid, "llem-reaper-orphan")
    alive = _labelled(engine, os.getpid(), "llem-reaper-alive")  # this test's own pid: alive
    try:
        study = write_study(tmp_path / "s.yaml", tiny_study("s"))
        proc = run_cli(["run", str(study)], cli_env(user_config(tmp_path)))
        assert proc.returncode == 0, proc.stderr[-2000:]
        names = {c.name for c in engine.containers.list(all=True)}
        assert "llem-reaper-orphan" not in names
        assert "llem-reaper-alive" in names
    finally:
        for c in (orphan, alive):
            with contextlib.suppress(Exception):  # already reaped
                c.remove(force=True)
