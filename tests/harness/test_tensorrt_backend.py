"""The TensorRT-LLM backend against a stand-in for its documented LLM API.

TensorRT-LLM needs an NVIDIA GPU and is not installable on the machines this project is
developed on, so the stand-in below mirrors the documented signatures (keyword names and
defaults from tensorrt_llm/llmapi/llm_args.py and sampling_params.py): an argument the real
API does not take is a TypeError here too. The harness then runs end to end on it.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult, MeasurementSettings, standalone_request
from llem_harness.run import run_experiment

CALLS: dict[str, Any] = {}


class KvCacheConfig:
    def __init__(
        self,
        *,
        free_gpu_memory_fraction: float | None = None,
        max_tokens: int | None = None,
        enable_block_reuse: bool = True,
    ) -> None:
        self.free_gpu_memory_fraction = free_gpu_memory_fraction
        assert enable_block_reuse is False  # the harness must not reuse cached prompts


class SamplingParams:
    def __init__(
        self,
        *,
        max_tokens: int = 32,
        min_tokens: int | None = None,
        ignore_eos: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        repetition_penalty: float | None = None,
        end_id: int | None = None,
    ) -> None:
        self.max_tokens, self.ignore_eos = max_tokens, ignore_eos


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: Any = None,
        skip_tokenizer_init: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        max_batch_size: int | None = None,
        max_num_tokens: int | None = None,
        kv_cache_config: KvCacheConfig | None = None,
        load_format: str = "auto",
    ) -> None:
        config = json.loads((Path(model) / "config.json").read_text())
        CALLS["build_cache"] = (
            os.environ.get("TLLM_LLMAPI_BUILD_CACHE"),
            os.environ.get("TLLM_LLMAPI_BUILD_CACHE_ROOT"),
        )
        CALLS["llm"] = {
            "architectures": config["architectures"],
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "max_batch_size": max_batch_size,
            "load_format": load_format,
            "skip_tokenizer_init": skip_tokenizer_init,
            "free": kv_cache_config.free_gpu_memory_fraction if kv_cache_config else None,
        }
        CALLS["generate"] = 0
        # tensorrt_llm/tokenizer/tokenizer.py: TransformersTokenizer holds the transformers
        # tokenizer as `.tokenizer`, and defines no `vocab_size` of its own
        self.tokenizer = (
            None
            if skip_tokenizer_init
            else types.SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(model))
        )

    def generate(self, inputs: Any, sampling_params: Any = None, use_tqdm: bool = True) -> Any:
        CALLS["generate"] += 1
        CALLS["prompts"] = inputs
        assert all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in inputs)
        n = sampling_params.max_tokens if sampling_params.ignore_eos else 1  # EOS at once
        completion = types.SimpleNamespace(token_ids=list(range(n)))
        return [types.SimpleNamespace(outputs=[completion]) for _ in inputs]

    def shutdown(self) -> None:
        CALLS["shutdown"] = True


@pytest.fixture()
def fake_trtllm(monkeypatch: pytest.MonkeyPatch) -> None:
    root = types.ModuleType("tensorrt_llm")
    root.LLM, root.SamplingParams, root.__version__ = LLM, SamplingParams, "1.2.1-standin"  # type: ignore[attr-defined]
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    llmapi.KvCacheConfig = KvCacheConfig  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt_llm", root)
    monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", llmapi)
    CALLS.clear()


def test_the_harness_runs_tensorrt_through_the_llm_api(
    tmp_path: Path, fake_trtllm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "engines"
    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(cache))  # what the runners set
    for var in ("TLLM_LLMAPI_BUILD_CACHE", "TLLM_LLMAPI_BUILD_CACHE_ROOT"):
        monkeypatch.setenv(var, "not set by the backend")  # and restored after the test
    cfg = ExperimentConfig.model_validate(
        {
            "model": "llem/tiny-llama",
            "backend": "tensorrt",
            "weights": "dummy",
            "precision": "bf16",
            "n_prompts": 6,
            "max_input_tokens": 16,
            "max_output_tokens": 5,
            "warmup_runs": 1,
            "warmup_max_runs": 1,
            "tensorrt": {"max_batch_size": 4, "kv_cache_free_gpu_memory_fraction": 0.5},
        }
    )
    req = standalone_request(cfg, measurement=MeasurementSettings(baseline_seconds=0))
    (tmp_path / "experiment.json").write_text(req.model_dump_json())
    assert run_experiment(str(tmp_path)) == 0, (tmp_path / "error.json").read_text()
    res = ExperimentResult.model_validate_json((tmp_path / "result.json").read_text())
    assert res.backend == "tensorrt" and res.backend_version == "1.2.1-standin"
    assert res.tokens.output == 6 * 5
    assert CALLS["llm"] == {
        "architectures": ["LlamaForCausalLM"],
        "tensor_parallel_size": 1,
        "dtype": "bfloat16",
        "max_batch_size": 4,
        "load_format": "dummy",
        "skip_tokenizer_init": True,
        "free": 0.5,
    }
    # warmup, the measured pass, and the prefill-only passes of the phases (the stand-in is
    # fast: they repeat to fill the 2 s window, up to 64)
    assert res.phases is not None and res.phases.prefill.passes is not None
    assert CALLS["generate"] == 2 + res.phases.prefill.passes and CALLS["shutdown"] is True
    assert res.backend_details["engine_build_s"] is not None
    assert CALLS["build_cache"] == ("1", str(cache))  # set before the engine is built
    assert res.backend_details["engine_cache"] == str(cache)
    assert res.latency.ttft_ms is None and res.latency.unavailable_reason


def test_tensorrt_output_length_is_checked(
    tmp_path: Path, fake_trtllm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SamplingParams, "__init__", _no_ignore_eos)
    cfg = ExperimentConfig.model_validate(
        {"model": "llem/tiny-llama", "backend": "tensorrt", "weights": "dummy", "n_prompts": 2}
    )
    req = standalone_request(cfg, measurement=MeasurementSettings(baseline_seconds=0))
    (tmp_path / "experiment.json").write_text(req.model_dump_json())
    assert run_experiment(str(tmp_path)) != 0
    err = json.loads((tmp_path / "error.json").read_text())
    assert "produced 1 tokens" in err["message"]


def _no_ignore_eos(self: Any, **kw: Any) -> None:  # a build that dropped ignore_eos
    self.max_tokens, self.ignore_eos = kw["max_tokens"], False


def test_pretrained_prompts_go_through_the_chat_template(tmp_path: Path, fake_trtllm: None) -> None:
    """With pretrained weights the prompt ids are the model's tokenizer through its chat
    template, cut to max_input_tokens: models.tokenize's ids, as pytorch and vllm send."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from llem_harness.backends.tensorrt.backend import TensorRTBackend
    from llem_harness.datasets import builtin_prompts
    from llem_harness.models import dummy_model_dir, tokenize

    folder, vocab = dummy_model_dir("llem/tiny-llama", tmp_path / "ckpt")
    words = Tokenizer(models.WordLevel({"<unk>": 0, "USER": 2, "ASSISTANT": 3}, "<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>")
    fast.chat_template = "USER {{ messages[0]['content'] }} ASSISTANT"
    fast.save_pretrained(folder)
    cfg = ExperimentConfig.model_validate(
        {
            "model": str(folder),
            "backend": "tensorrt",
            "weights": "pretrained",
            "n_prompts": 3,
            "max_input_tokens": 8,
            "max_output_tokens": 2,
            "warmup_runs": 1,
            "warmup_max_runs": 1,
        }
    )
    req = standalone_request(cfg, measurement=MeasurementSettings(baseline_seconds=0))
    (tmp_path / "experiment.json").write_text(req.model_dump_json())
    assert run_experiment(str(tmp_path)) == 0, (tmp_path / "error.json").read_text()
    assert CALLS["llm"]["skip_tokenizer_init"] is False
    prompts = CALLS["prompts"]
    assert len(prompts) == 3
    for ids in prompts:  # the template's ends kept, the text between cut to fit
        assert ids[0] == 2 and ids[-1] == 3 and 2 < len(ids) <= 8, ids
    texts = builtin_prompts(cfg.n_prompts, cfg.random_seed)
    assert prompts == [tokenize(t, fast, 0, max_tokens=8) for t in texts]
    backend = TensorRTBackend()
    backend.load(cfg, tmp_path)
    assert backend.vocab_size == vocab > 3  # the model's, not the word-level tokenizer's
