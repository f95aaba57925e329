"""A reviewer's round trip through the Docker runner: a study run in containers, packed,
reproduced from the pack (the image's digest checked against the one the study recorded),
and compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker.conftest import cli_env, run_cli, study_dir, tiny_study, user_config
from tests.docker.conftest import write_study as write

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_pack_reproduce_compare_through_the_docker_runner(tmp_path: Path, test_image: str) -> None:
    study = tiny_study("round-trip", sweep={"batch_size": [1, 4]},
                       execution={"n_cycles": 2, "cycle_order": "interleaved"})  # fmt: skip
    path = write(tmp_path / "round-trip.yaml", study)
    env = cli_env(user_config(tmp_path))
    proc = run_cli(["run", str(path)], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a = study_dir(tmp_path / "results")
    proc = run_cli(["pack", str(a), "--out", str(tmp_path / "p.tar.gz")], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli(["reproduce", str(tmp_path / "p.tar.gz"), "--results-dir",
                    str(tmp_path / "again")], env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the same image: its digest is the one the study recorded, so nothing refused it
    assert "same      backends.pytorch.image_digest" in proc.stdout, proc.stdout
    b = study_dir(tmp_path / "again")
    proc = run_cli(["compare", str(a), str(b), "--margin", "60%", "--format", "json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["points"]) == 2 and "environment: no field differs" not in data["summary"]
    tps = [c for p in data["points"] for c in p["comparisons"]
           if c["metric"] == "throughput_tokens_per_s"]  # fmt: skip
    assert len(tps) == 2 and all(c["n_a"] == c["n_b"] == 2 for c in tps)
