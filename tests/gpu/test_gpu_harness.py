"""Harness on a real NVIDIA GPU (marker `gpu`; never in CI). Results: bench/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_harness.config import ExperimentConfig
from llem_harness.contract import MeasurementSettings, standalone_request
from llem_harness.energy import read_timeseries
from llem_harness.run import run_experiment

pytestmark = pytest.mark.gpu


def request(run_dir: Path, **cfg: object) -> None:
    config = ExperimentConfig.model_validate(
        {
            "model": "meta-llama/Llama-3.2-1B",
            "backend": "pytorch",
            "weights": "dummy",
            "precision": "bf16",
            "batch_size": 8,
            "n_prompts": 32,
            "dataset": "synthetic",
            "max_input_tokens": 128,
            "max_output_tokens": 64,
            **cfg,
        }
    )
    req = standalone_request(
        config,
        run_id="gpu",
        measurement=MeasurementSettings(energy_backend="nvml", baseline_seconds=1),
    )
    (run_dir / "experiment.json").write_text(req.model_dump_json())


@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_gpu_run_measures_energy(tmp_path: Path, cache: str) -> None:
    request(tmp_path, pytorch={"cache_implementation": cache})
    assert run_experiment(tmp_path) == 0, (tmp_path / "error.json").read_text()
    res = json.loads((tmp_path / "result.json").read_text())
    e = res["energy"]
    assert e["method"] == "nvml_counter" and e["total_j"] > 0
    assert e["baseline_power_w"] > 0 and e["adjusted_j"] < e["total_j"]
    assert set(e["per_device_j"]) == {"0"}
    assert res["memory"]["peak_mb"] > 1000  # 1B params in bf16 alone are ~2.4 GB
    assert res["environment"]["gpus"][0]["name"]
    assert res["energy_per_output_token_j"] == pytest.approx(e["total_j"] / (32 * 64))
    rows = read_timeseries(tmp_path / "timeseries.parquet")
    assert rows and all(r.power_w is not None and r.power_w > 0 for r in rows)
    assert res["backend_details"]["device"] == "cuda:0"
