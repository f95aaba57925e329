"""vLLM backend: the offline `LLM` API, every prompt submitted at once.

`weights: dummy` writes the model's config to a folder (models.py: a stable one under the
engine cache) and loads it with `load_format="dummy"` (random weights, no download).
Prompts go in as token ids, so no tokenizer is needed for dummy models, and pytorch and vllm
see the very same ids.

**Latency without vLLM's request statistics.** vLLM's per-request statistics (`log_stats`,
`RequestOutput.metrics`) can cost throughput: one H200 measurement gave a plain `LLM.generate`
loop 21.9k tok/s with `disable_log_stats=True` and 17.9k tok/s with it False (a rerun with
both engines in one process did not show the gap: bench/README.md). With stats on, the
scheduler records events per request, the engine core builds `SchedulerStats` every step, and
the front end updates `IterationStats` per request and per token and feeds the stat loggers
(`vllm/v1/engine/llm_engine.py` `step`, `output_processor.py` `_update_stats_from_output`).
`log_stats` is fixed when the engine core is built and cannot be toggled at run time. So the
engine runs with stats off, as users run it, and the measured pass is a plain
`LLM.generate`. The token times come from a tap on the engine's `OutputProcessor`, installed
on the instance for the measured pass only:

- `add_request(request, ...)`: the request's internal id, its external id and the host's
  `time.monotonic()` when it enters the engine (vLLM's own arrival stamp is taken there too);
- `process_outputs(outputs, engine_core_timestamp=...)`: the engine core stamps every step's
  outputs (`EngineCoreOutputs.timestamp`, `time.monotonic()` in the engine process, set
  whether or not stats are on) and passes the stamp here. A request's first output is its
  first token, its output with a `finish_reason` its last: the very values vLLM's stats store
  as `first_token_ts`/`last_token_ts`. The tap adds one pass over the step's outputs (a dict
  lookup each) to vLLM's own per-output loop. Should a vLLM version stop passing the stamp,
  the host's clock is used and `latency.mode` says so.
"""

from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from llem_harness.backends.base import PassResult
from llem_harness.backends.spec import DTYPES, options_of
from llem_harness.backends.tokenizing import Tokenizing
from llem_harness.backends.vllm import SPEC
from llem_harness.backends.vllm.models import stable_dummy_model
from llem_harness.backends.vllm.options import VLLMOptions
from llem_harness.backends.whole_pass import WholePass
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails
from llem_harness.engine_args import parameters, route
from llem_harness.gguf_dense import dense_folder
from llem_harness.gguf_model import is_gguf

# Room above input + output tokens in the default max_model_len (BOS and rounding).
LEN_SLACK = 8
ENGINE_TS_MODE = "vllm_engine_step_ts"
HOST_TS_MODE = "vllm_host_step_ts"


class TokenTimeTap:
    """Per-request submit / first-token / last-token times, read off an OutputProcessor.

    Installed as instance attributes (shadowing the class's methods) and removed by `remove`,
    so warmup and every other engine call run vLLM's code untouched."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.submitted: dict[str, float] = {}  # internal request id -> host monotonic
        self.external: dict[str, str] = {}  # internal -> external (RequestOutput.request_id)
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.engine_clock = True
        add, process = processor.add_request, processor.process_outputs

        def add_request(request: Any, *args: Any, **kwargs: Any) -> Any:
            self.submitted[request.request_id] = time.monotonic()
            self.external[request.request_id] = str(
                getattr(request, "external_req_id", None) or request.request_id
            )
            return add(request, *args, **kwargs)

        def process_outputs(outputs: Any, *args: Any, **kwargs: Any) -> Any:
            ts = kwargs.get("engine_core_timestamp", args[0] if args else None)
            if not ts:
                ts, self.engine_clock = time.monotonic(), False
            first, last = self.first, self.last
            for out in outputs:
                rid = out.request_id
                if rid not in first:
                    first[rid] = ts
                if out.finish_reason is not None:
                    last[rid] = ts
            return process(outputs, *args, **kwargs)

        processor.add_request = add_request
        processor.process_outputs = process_outputs

    def remove(self) -> None:
        for name in ("add_request", "process_outputs"):
            self.processor.__dict__.pop(name, None)

    def by_external_id(self) -> dict[str, tuple[float, float, float]]:
        """External request id -> (submitted, first token, last token)."""
        return {
            self.external[rid]: (self.submitted[rid], first, self.last[rid])
            for rid, first in self.first.items()
            if rid in self.last and rid in self.submitted
        }


class VLLMDetails(BackendDetails):
    submission: str = "all prompts at once (LLM.generate)"
    log_stats: bool = False
    token_times: str = "engine step timestamps, tapped from the OutputProcessor"
    model_dir: str | None
    quantization: dict[str, JsonValue] | None


class VLLMBackend(WholePass, Tokenizing):
    name = "vllm"
    memory_owner = "vLLM runs the model in its engine process"

    def __init__(self) -> None:
        self.cfg: ExperimentConfig | None = None
        self.opts = VLLMOptions()
        self.llm: Any = None
        self._tokenizer: Any = None
        self._vocab = 0
        self._tmp: str | None = None
        self._model_dir: str | None = None
        self.engine_args: dict[str, Any] = {}
        self._sampling_args: dict[str, Any] = {}
        self.latency_mode = ENGINE_TS_MODE

    def version(self) -> str | None:
        import vllm

        return str(vllm.__version__)

    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        from vllm import LLM

        self.cfg = cfg
        self.opts = opts = options_of(cfg, VLLMOptions)
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
            # The engine as users run it: stats cost throughput (module docstring).
            "disable_log_stats": True,
        }
        if cfg.weights == "dummy":
            model, self._vocab, self._tmp = stable_dummy_model(cfg.model)
            self._model_dir = str(model)
            kwargs.update(model=str(model), load_format="dummy", skip_tokenizer_init=True)
        elif is_gguf(cfg.model):  # unpacked into a folder it loads (gguf_dense.py)
            folder, self._tmp = dense_folder(cfg.model, DTYPES[cfg.precision])
            self._model_dir = str(folder)
            kwargs.update(model=str(folder))
        else:
            kwargs.update(model=cfg.model)
        if cfg.quantization != "none":  # vLLM's own method (docs/quantization.md)
            kwargs["quantization"] = SPEC.quantization[cfg.quantization].flag
        kwargs |= self._route(LLM)["LLM"]  # vllm.engine_args
        self.engine_args = dict(kwargs)  # for benchmarks that build a twin engine
        self.llm = LLM(**kwargs)
        if cfg.weights != "dummy":
            self._tokenizer = self.llm.get_tokenizer()
            self._vocab = int(self.llm.llm_engine.model_config.get_vocab_size())

    def _quantization(self) -> dict[str, Any] | None:
        """The method asked for and the one the engine reports it runs (which a quantized
        checkpoint sets even under quantization: none)."""
        if self.cfg is None:
            return None
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        return {
            "method": self.cfg.quantization,
            "engine_quantization": getattr(config, "quantization", None),
        }

    def _route(self, llm: Any) -> dict[str, dict[str, Any]]:
        """vllm.engine_args split between `LLM` (and its EngineArgs) and `SamplingParams`
        (engine_args.py); the sampling part is kept for every pass."""
        import dataclasses

        from vllm import SamplingParams
        from vllm.engine.arg_utils import EngineArgs

        engine = parameters(llm.__init__) | {f.name for f in dataclasses.fields(EngineArgs)}
        sampling = parameters(SamplingParams) | set(
            getattr(SamplingParams, "__struct_fields__", ())
        )
        routed = route(
            "vllm", dict(self.opts.engine_args), {"LLM": engine, "SamplingParams": sampling}
        )
        self._sampling_args = routed["SamplingParams"]
        return routed

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        return [prompts]  # the measured pass: every prompt at once

    def _params(self, output_tokens: int | None = None) -> Any:
        from vllm import SamplingParams

        assert self.cfg is not None
        n_out, d = output_tokens or self.cfg.max_output_tokens, self.cfg.decoding
        fixed = self.cfg.output_length == "fixed"
        return SamplingParams(
            n=1,
            max_tokens=n_out,
            min_tokens=n_out if fixed else 0,
            ignore_eos=fixed,  # fixed output length, as on every backend, unless natural
            temperature=d.temperature,
            top_p=d.top_p,
            top_k=d.top_k if d.top_k > 0 else -1,
            repetition_penalty=d.repetition_penalty,
            seed=self.cfg.random_seed if d.temperature > 0 else None,
            **self._sampling_args,  # vllm.engine_args for SamplingParams
        )

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        from vllm.inputs import TokensPrompt

        assert self.cfg is not None
        n_out = output_tokens or self.cfg.max_output_tokens
        params = self._params(n_out)
        tap = TokenTimeTap(self.llm.llm_engine.output_processor) if timed else None
        try:
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False
            )
        finally:
            if tap is not None:
                tap.remove()
        result = PassResult(input_tokens=0, output_tokens=0)
        times = tap.by_external_id() if tap is not None else {}
        for out in outs:
            produced = len(out.outputs[0].token_ids)
            result.lengths.append(produced)
            if produced != n_out and self.cfg.output_length == "fixed":
                raise RuntimeError(f"vLLM produced {produced} tokens for a request, not {n_out}")
            result.input_tokens += len(out.prompt_token_ids)
            result.output_tokens += produced
            if self._tokenizer is not None:  # the texts are made after the window
                result.output_ids.append(list(out.outputs[0].token_ids))
            if str(out.request_id) in times:
                _add_latency(result, times[str(out.request_id)], produced)
                result.span_prompts.append(len(out.prompt_token_ids))
        if tap is not None:
            self.latency_mode = ENGINE_TS_MODE if tap.engine_clock else HOST_TS_MODE
        return result

    def kv_cache_tokens(self) -> int | None:
        """The KV cache's capacity in tokens (blocks x block size), as the engine set it."""
        cache = getattr(getattr(self.llm, "llm_engine", None), "vllm_config", None)
        cache = getattr(cache, "cache_config", None)
        blocks, size = getattr(cache, "num_gpu_blocks", None), getattr(cache, "block_size", None)
        return int(blocks) * int(size) if blocks and size else None

    def details(self) -> VLLMDetails:
        return VLLMDetails(
            **self.opts.model_dump(mode="json"),  # the vllm: section, engine_args included
            model_dir=self._model_dir,
            quantization=self._quantization(),
        )

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


def _add_latency(result: PassResult, times: tuple[float, float, float], produced: int) -> None:
    """TTFT (submit to first token), mean inter-token gap, request time (submit to last)."""
    submitted, first, last = times
    result.ttft_ms.append((first - submitted) * 1000)
    if produced > 1:
        result.itl_ms.append((last - first) * 1000 / (produced - 1))
    result.request_ms.append((last - submitted) * 1000)
    result.spans.append((first, last, produced))
    result.submitted.append(submitted)
