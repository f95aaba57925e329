"""The serving scenario for real, on the CPU: vLLM's own API server inside
llem-test/vllm:cpu, driven by the load generator at two request rates, through the Docker
runner; then the report's serving table and figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem_harness.contract import ExperimentResult
from tests.conftest import REPO
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
N = 16


def test_a_serving_study_sweeps_the_request_rate(tmp_path: Path, vllm_image: str) -> None:  # noqa: F811
    study = tiny_study(
        "serving",
        backend="vllm",
        scenario="serving",
        n_prompts=N,
        max_output_tokens=8,
        serving={"arrival": "constant", "slo": {"ttft_ms": 60_000}},
        vllm={"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True},
        sweep={"serving.request_rate": [2, 16]},
        dataset="qa.jsonl",  # short questions with answers, so that quality is asked for
        quality={"metric": "contains"},
    )
    shutil.copy(REPO / "examples" / "data" / "easy-qa.jsonl", tmp_path / "qa.jsonl")
    path = write_study(tmp_path / "serving.yaml", study)
    config = user_config(
        tmp_path, runners={"vllm": f"docker:{vllm_image}"}, docker={"shm_size": "1g"}
    )
    proc = run_cli(["run", str(path)], cli_env(config))
    out = study_dir(tmp_path / "results")
    man = manifest(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    by_rate: dict[float, ExperimentResult] = {}
    for run in man["runs"]:
        folder = out / "runs" / run["run_id"]
        res = ExperimentResult.model_validate_json((folder / "result.json").read_text())
        assert res.serving is not None
        by_rate[float(res.serving.request_rate)] = res
        s = res.serving
        assert (s.requests, s.completed, s.failed) == (N, N, 0), s.errors
        assert s.ttft_ms is not None and s.ttft_ms.n == N and s.e2e_ms is not None
        assert s.slo_attainment == 1.0 and s.goodput_rps is not None
        assert res.tokens.output == N * 8 and not any("length" in w for w in res.warnings)
        # on the CPU: no GPU energy, said so; the load generator's own CPU time is measured
        assert s.energy_per_request_j is None and s.whole.energy_j is None
        assert s.whole.unavailable_reason and res.energy.unavailable_reason
        assert s.load_generator.cpu_s is not None and s.load_generator.cpu_s > 0
        # every request's record, beside the timeseries
        table = pq.read_table(folder / "requests.parquet").to_pydict()
        assert len(table["request"]) == N and all(table["ok"])
        assert all(f >= s_ for f, s_ in zip(table["first_token_s"], table["submit_s"], strict=True))
        assert (folder / "server.log").stat().st_size > 0
        q = res.quality  # asked for, but random weights answer nothing: null with the reason
        assert q is not None and q.accuracy is None
        assert "random weights" in (q.unavailable_reason or "")
        em = res.engine_metrics  # rebuilt from the load generator's request times
        assert em is not None and em.concurrency_limit == 4 and em.max_running is not None
        assert 1 <= em.max_running <= N and em.kv_cache_tokens  # from the server's log
        assert res.backend_details["server"]["command"][1:3] == [
            "-m",
            "vllm.entrypoints.openai.api_server",
        ]
    low = by_rate[2.0].serving
    assert low is not None and low.achieved_rate is not None
    assert abs(low.achieved_rate - 2.0) / 2.0 < 0.10  # constant arrivals, 16 over 7.5 s
    # 7.5 s of sends against sub-second requests: a steady window with its tokens
    assert low.steady.duration_s is not None and low.steady.duration_s > 3
    assert low.steady.output_tokens and low.steady.completed
    # the report: the serving table and the attainment line
    report = tmp_path / "report"
    done = run_cli(["report", str(out), "--format", "md", "--out", str(report)], cli_env(config))
    assert done.returncode == 0, done.stderr[-2000:]
    text = (report / "report.md").read_text()
    assert "## Serving" in text and "SLO attainment stays at or above 90% up to 16" in text
    assert (report / "serving.png").exists()
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted(r["request_rate"] for r in rows) == [2.0, 16.0]
    assert json.loads((out / "study.json").read_text())["state"] == "completed"
