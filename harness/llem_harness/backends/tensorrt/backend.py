"""TensorRT-LLM backend, through its LLM API (`tensorrt_llm.LLM`), every prompt at once.

Written against the documented API (tensorrt_llm/llmapi/llm_args.py, sampling_params.py):
`LLM(model, tensor_parallel_size, max_batch_size, max_num_tokens, kv_cache_config=
KvCacheConfig(free_gpu_memory_fraction=...), load_format="dummy", skip_tokenizer_init=True)`,
`SamplingParams(max_tokens, min_tokens, ignore_eos=True)`, `llm.generate(prompts, params)`.
It has not run on hardware here: no TensorRT-LLM package or image was reachable (docs/backends.md).
Building the engine (constructing `LLM`) happens at load, outside the measured window, and its
time is reported as `engine_build_s`. Built engines are cached in `$LLEM_ENGINE_CACHE` (the
runners mount `output.engine_cache_dir` there) through TensorRT-LLM's build cache, which
`TLLM_LLMAPI_BUILD_CACHE=1` and `TLLM_LLMAPI_BUILD_CACHE_ROOT` switch on.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from llem_harness.backends.base import PassResult
from llem_harness.backends.spec import DTYPES, options_of
from llem_harness.backends.tensorrt.options import TensorRTOptions
from llem_harness.backends.tokenizing import Tokenizing
from llem_harness.backends.whole_pass import WholePass
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails
from llem_harness.engine_args import parameters, route
from llem_harness.models import dummy_model_dir
from llem_harness.quantization import checkpoint_method, verify_checkpoint


class TensorRTDetails(BackendDetails):
    engine_build_s: float | None  # building the engine, outside the measured window
    engine_cache: str | None
    submission: str = "all prompts at once"
    quantization: dict[str, JsonValue] | None


class TensorRTBackend(WholePass, Tokenizing):
    name = "tensorrt"
    memory_owner = "TensorRT-LLM manages its own device memory"
    latency_mode = "none"  # per-request token times are not read from TensorRT-LLM yet

    def __init__(self) -> None:
        self.cfg: ExperimentConfig | None = None
        self.opts = TensorRTOptions()
        self.llm: Any = None
        self._tokenizer: Any = None
        self._vocab = 0
        self._tmp: str | None = None
        self.engine_build_s: float | None = None
        self.engine_cache: str | None = None
        self.quantization: dict[str, Any] | None = None
        self._sampling_args: dict[str, Any] = {}

    def version(self) -> str | None:
        import tensorrt_llm

        return str(tensorrt_llm.__version__)

    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        from tensorrt_llm import LLM
        from tensorrt_llm.llmapi import KvCacheConfig

        self.cfg = cfg
        self.opts = opts = options_of(cfg, TensorRTOptions)
        kwargs: dict[str, Any] = {
            "dtype": DTYPES[cfg.precision],
            "tensor_parallel_size": opts.tp_size,
            "max_batch_size": opts.max_batch_size,
            # No KV block reuse: the warmup, the measured pass and the phases' one-token pass
            # repeat the same prompts, and a reused block is prefill never computed.
            "kv_cache_config": KvCacheConfig(
                free_gpu_memory_fraction=opts.kv_cache_free_gpu_memory_fraction,
                enable_block_reuse=False,
            ),
        }
        if opts.max_num_tokens is not None:
            kwargs["max_num_tokens"] = opts.max_num_tokens
        self.engine_cache = os.environ.get("LLEM_ENGINE_CACHE") or None
        if self.engine_cache:  # TensorRT-LLM's build cache (llmapi/build_cache.py), by env
            os.environ["TLLM_LLMAPI_BUILD_CACHE"] = "1"
            os.environ["TLLM_LLMAPI_BUILD_CACHE_ROOT"] = self.engine_cache
        config = None  # the checkpoint's, for pretrained weights
        if cfg.weights == "dummy":
            self._tmp = tempfile.mkdtemp(prefix="llem-trtllm-model-")
            model, self._vocab = dummy_model_dir(cfg.model, Path(self._tmp))
            kwargs.update(model=str(model), load_format="dummy", skip_tokenizer_init=True)
        else:
            kwargs["model"] = cfg.model
            config = self._checkpoint_config(cfg)
            self.quantization = self._checkpoint_quantization(cfg, config)
        kwargs |= self._route(LLM)["LLM"]  # tensorrt.engine_args
        t0 = time.perf_counter()
        self.llm = LLM(**kwargs)
        self.engine_build_s = time.perf_counter() - t0
        if config is not None:
            # TensorRT-LLM wraps the transformers tokenizer (tokenizer.TransformersTokenizer);
            # the shared path (chat template, cut to max_input_tokens) takes it bare, as on
            # the other backends, so the same prompt is the same ids everywhere
            wrapper = self.llm.tokenizer
            self._tokenizer = getattr(wrapper, "tokenizer", wrapper)
            # the model's vocabulary, as pytorch and vllm take it (the tokenizer's can be
            # smaller: Llama 3's is 128,000 against the embedding's 128,256)
            self._vocab = int(getattr(config, "vocab_size", 0) or self._tokenizer.vocab_size)

    @staticmethod
    def _checkpoint_config(cfg: ExperimentConfig) -> Any:
        import transformers

        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        return transformers.AutoConfig.from_pretrained(cfg.model, local_files_only=offline)

    @staticmethod
    def _checkpoint_quantization(cfg: ExperimentConfig, config: Any = None) -> dict[str, Any]:
        """TensorRT-LLM runs whatever a checkpoint holds, so the checkpoint must hold what
        the study names (docs/quantization.md): read it, refuse a mismatch."""
        from transformers.utils.hub import cached_file

        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        config = config or TensorRTBackend._checkpoint_config(cfg)
        extra = cached_file(
            cfg.model, "hf_quant_config.json", local_files_only=offline,
            _raise_exceptions_for_missing_entries=False,
        )  # fmt: skip
        hf_quant = json.loads(Path(extra).read_text()) if extra else None
        found = checkpoint_method(getattr(config, "quantization_config", None), hf_quant)
        verify_checkpoint(cfg.model, cfg.quantization, found)
        return {"method": cfg.quantization, "checkpoint": found}

    def _route(self, llm: Any) -> dict[str, dict[str, Any]]:
        """tensorrt.engine_args split between `LLM` (its parameters and its LLM API
        arguments' fields) and `SamplingParams` (engine_args.py)."""
        import dataclasses

        from tensorrt_llm import SamplingParams

        engine = parameters(llm.__init__)
        try:
            from tensorrt_llm.llmapi.llm_args import TorchLlmArgs

            engine |= set(TorchLlmArgs.model_fields)
        except (ImportError, AttributeError):
            pass
        sampling = parameters(SamplingParams)
        if dataclasses.is_dataclass(SamplingParams):
            sampling |= {f.name for f in dataclasses.fields(SamplingParams)}
        targets = {"LLM": engine, "SamplingParams": sampling}
        routed = route("tensorrt", dict(self.opts.engine_args), targets)
        self._sampling_args = routed["SamplingParams"]
        return routed

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        return [prompts]

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        from tensorrt_llm import SamplingParams

        assert self.cfg is not None
        n_out, d = output_tokens or self.cfg.max_output_tokens, self.cfg.decoding
        params = SamplingParams(
            max_tokens=n_out,
            min_tokens=n_out if self.cfg.output_length == "fixed" else None,
            ignore_eos=self.cfg.output_length == "fixed",  # natural: a response ends at EOS
            temperature=d.temperature,
            top_p=d.top_p,
            top_k=d.top_k or None,
            repetition_penalty=d.repetition_penalty,
            **self._sampling_args,  # tensorrt.engine_args for SamplingParams
        )
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        result = PassResult(input_tokens=0, output_tokens=0)
        for prompt, out in zip(prompts, outs, strict=True):
            produced = len(out.outputs[0].token_ids)
            result.lengths.append(produced)
            if produced != n_out and self.cfg.output_length == "fixed":
                raise RuntimeError(
                    f"TensorRT-LLM produced {produced} tokens for a request, not {n_out}"
                )
            result.input_tokens += len(prompt)
            result.output_tokens += produced
        return result

    def details(self) -> TensorRTDetails:
        return TensorRTDetails(
            **self.opts.model_dump(mode="json", exclude={"engine_args"}),
            engine_build_s=self.engine_build_s,
            engine_cache=self.engine_cache,
            quantization=self.quantization,
        )

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None and hasattr(llm, "shutdown"):
            llm.shutdown()
        del llm
        gc.collect()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
