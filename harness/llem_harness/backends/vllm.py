"""vLLM backend: the offline `LLM` API, every prompt submitted at once.

`weights: dummy` writes the model's config to a temporary folder and loads it with
`load_format="dummy"` (random weights, no download). Prompts go in as token ids, so no
tokenizer is needed for dummy models, and pytorch and vllm see the very same ids. Latency comes
from vLLM's per-request stats (engine timestamps, on the host's monotonic clock).
"""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llem_harness.backends.base import PassResult
from llem_harness.config import ExperimentConfig, VLLMOptions
from llem_harness.models import dummy_model_dir, tokenize

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Room above input + output tokens in the default max_model_len (BOS and rounding).
LEN_SLACK = 8


class VLLMBackend:
    name = "vllm"
    latency_mode = "vllm_request_stats"

    def __init__(self) -> None:
        self.cfg: ExperimentConfig | None = None
        self.opts = VLLMOptions()
        self.llm: Any = None
        self._tokenizer: Any = None
        self._vocab = 0
        self._tmp: str | None = None

    def version(self) -> str | None:
        import vllm

        return str(vllm.__version__)

    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        from vllm import LLM

        self.cfg = cfg
        self.opts = opts = cfg.vllm or VLLMOptions()
        kwargs: dict[str, Any] = {
            "dtype": DTYPES[cfg.precision],
            "seed": cfg.random_seed,
            "tensor_parallel_size": opts.tensor_parallel_size,
            "gpu_memory_utilization": opts.gpu_memory_utilization,
            "enforce_eager": opts.enforce_eager,
            "max_num_seqs": opts.max_num_seqs,
            "enable_prefix_caching": opts.enable_prefix_caching,
            "max_model_len": opts.max_model_len
            or cfg.max_input_tokens + cfg.max_output_tokens + LEN_SLACK,
            "disable_log_stats": False,  # per-request stats: the latency figures
        }
        if cfg.weights == "dummy":
            self._tmp = tempfile.mkdtemp(prefix="llem-vllm-model-")
            model, self._vocab = dummy_model_dir(cfg.model, Path(self._tmp))
            kwargs.update(model=str(model), load_format="dummy", skip_tokenizer_init=True)
        else:
            kwargs.update(model=cfg.model)
        self.llm = LLM(**kwargs)
        if cfg.weights != "dummy":
            self._tokenizer = self.llm.get_tokenizer()
            self._vocab = int(self.llm.llm_engine.model_config.get_vocab_size())

    def tokenize(self, text: str) -> list[int]:
        return tokenize(text, self._tokenizer, self._vocab)

    @property
    def vocab_size(self) -> int:
        return self._vocab

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        return [prompts]  # the measured pass: every prompt at once

    def generate(self, prompts: list[list[int]], *, timed: bool) -> PassResult:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        assert self.cfg is not None
        n_out, d = self.cfg.max_output_tokens, self.cfg.decoding
        params = SamplingParams(
            n=1,
            max_tokens=n_out,
            min_tokens=n_out,
            ignore_eos=True,  # fixed output length, as on every backend
            temperature=d.temperature,
            top_p=d.top_p,
            top_k=d.top_k if d.top_k > 0 else -1,
            repetition_penalty=d.repetition_penalty,
            seed=self.cfg.random_seed if d.temperature > 0 else None,
        )
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False
        )
        result = PassResult(input_tokens=0, output_tokens=0)
        for out in outs:
            produced = len(out.outputs[0].token_ids)
            if produced != n_out:
                raise RuntimeError(f"vLLM produced {produced} tokens for a request, not {n_out}")
            result.input_tokens += len(out.prompt_token_ids)
            result.output_tokens += produced
            if timed:
                _add_latency(result, out.metrics, produced)
        return result

    def synchronize(self) -> None:
        """`LLM.generate` returns when every request has finished: nothing is queued."""

    def peak_memory_mb(self) -> tuple[float | None, str | None]:
        return None, (
            "vLLM runs the model in its engine process, whose allocator the harness cannot "
            "see; the timeseries' memory_used_mb has the device's memory"
        )

    def details(self) -> dict[str, Any]:
        o = self.opts
        return {
            "max_num_seqs": o.max_num_seqs,
            "tensor_parallel_size": o.tensor_parallel_size,
            "gpu_memory_utilization": o.gpu_memory_utilization,
            "enforce_eager": o.enforce_eager,
            "max_model_len": o.max_model_len,
            "enable_prefix_caching": o.enable_prefix_caching,
            "submission": "all prompts at once",
        }

    def close(self) -> None:
        """Shut the engine down so the next run starts from a clean device."""
        llm, self.llm = self.llm, None
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            del llm
        gc.collect()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _add_latency(result: PassResult, stats: Any, produced: int) -> None:
    """TTFT, mean inter-token gap and request time from vLLM's RequestStateStats."""
    if stats is None or not getattr(stats, "first_token_ts", 0.0):
        return
    first, last = float(stats.first_token_ts), float(stats.last_token_ts)
    ttft_s = float(stats.first_token_latency)
    result.ttft_ms.append(ttft_s * 1000)
    if produced > 1:
        result.itl_ms.append((last - first) * 1000 / (produced - 1))
    result.request_ms.append((ttft_s + last - first) * 1000)
    result.spans.append((first, last, produced))
