"""The typed environment (schema 1.8), and results of the previous schema still read: two
result.json files recorded on an H100 on 2026-12-07 with schema 1.7 (a run with `--gpus none`
and one with the GPU), as they were written."""

from __future__ import annotations

import json

from llem_harness.contract import SCHEMA_VERSION, ExperimentResult
from llem_harness.contract_env import Environment
from tests.harness.test_energy import DATA


def test_a_stored_1_7_result_reads_with_typed_gpus() -> None:
    raw = json.loads((DATA / "result-1.7-gpu.json").read_text())
    assert raw["schema_version"] == "1.7" and SCHEMA_VERSION == "1.12"
    res = ExperimentResult.model_validate(raw)
    env = res.environment
    assert env.gpu_count == 1 and env.gpu_unavailable_reason is None
    (gpu,) = env.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.uuid and gpu.uuid.startswith("GPU-")
    assert env.power_limit_w() == 700.0 and env.cuda_visible_devices == "0"
    assert env.compile_caches is not None and env.compile_caches.root == "/llem/engine-cache"
    assert res.model_dump(mode="json")["environment"]["gpus"][0] == raw["environment"]["gpus"][0]


def test_a_1_7_result_without_a_gpu_tells_none_from_unknown() -> None:
    """1.7 wrote gpu_count 0 for every empty device list; read now, the energy block's reason
    decides: no NVML library means no GPU (0), energy_backend: none means unknown (null)."""
    raw = json.loads((DATA / "result-1.7-nogpu.json").read_text())
    assert raw["environment"]["gpus"] == [] and raw["environment"]["gpu_count"] == 0
    env = ExperimentResult.model_validate(raw).environment
    assert env.gpu_count == 0 and env.gpu_unavailable_reason == raw["energy"]["unavailable_reason"]
    raw["energy"]["unavailable_reason"] = "energy measurement disabled (energy_backend: none)"
    env = ExperimentResult.model_validate(raw).environment
    assert env.gpu_count is None and "energy_backend: none" in (env.gpu_unavailable_reason or "")


def test_a_1_8_environment_is_taken_as_written() -> None:
    env = Environment(gpus=[], gpu_count=None, gpu_unavailable_reason="NVML failed: Unknown")
    env.upgrade("NVML Shared Library Not Found")  # only results of earlier schemas are upgraded
    assert env.gpu_count is None and env.gpu_unavailable_reason == "NVML failed: Unknown"
