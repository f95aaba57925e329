"""ExperimentConfig: what one experiment measures. Shared by the host and the harness.

Every model forbids unknown keys, so a typo in a study file is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llem_harness.quantization import Quantization, config_problem

BACKENDS: tuple[str, ...] = ("pytorch", "vllm", "tensorrt")
Backend = Literal["pytorch", "vllm", "tensorrt"]
Precision = Literal["fp32", "fp16", "bf16"]
# Each precision's dtype as the engines name it (torch attribute, vLLM/TensorRT-LLM `dtype`).
DTYPES: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
Weights = Literal["pretrained", "dummy"]

BUILTIN_DATASETS: tuple[str, ...] = ("builtin", "synthetic")
Scenario = Literal["offline", "serving"]
# Backends whose engine has its own OpenAI-compatible server (the serving scenario).
SERVER_BACKENDS: dict[str, str] = {"vllm": "vLLM's API server", "tensorrt": "trtllm-serve"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decoding(_Strict):
    """Sampling parameters. Output length is fixed by the protocol (EOS is ignored)."""

    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    repetition_penalty: float = Field(1.0, gt=0.0)


class PyTorchOptions(_Strict):
    """transformers `generate` knobs."""

    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    cache_implementation: Literal["dynamic", "static"] = "static"
    torch_compile: bool = False
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="further keywords for the engine, checked against its signatures at start",
    )


class VLLMOptions(_Strict):
    """vLLM engine knobs (offline `LLM` API)."""

    max_num_seqs: int = Field(256, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    enforce_eager: bool = False
    max_model_len: int | None = Field(None, ge=1)
    enable_prefix_caching: bool = False
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="further keywords for the engine, checked against its signatures at start",
    )


class TensorRTOptions(_Strict):
    """TensorRT-LLM engine knobs (LLM API)."""

    max_batch_size: int = Field(256, ge=1)
    tp_size: int = Field(1, ge=1)
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0.0, le=1.0)
    max_num_tokens: int | None = Field(None, ge=1)
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="further keywords for the engine, checked against its signatures at start",
    )


# Keywords the harness sets from other fields: engine_args may not set them (the fix names
# the field that does). Everything else goes to the engine, checked there (engine_args.py).
RESERVED_ARGS: dict[str, dict[str, str]] = {
    "pytorch": {
        **dict.fromkeys(("max_new_tokens", "min_new_tokens"), "max_output_tokens"),
        **dict.fromkeys(("do_sample", "temperature", "top_p", "top_k"), "decoding"),
        "repetition_penalty": "decoding.repetition_penalty",
        "cache_implementation": "pytorch.cache_implementation",
        "attn_implementation": "pytorch.attn_implementation",
        **dict.fromkeys(("dtype", "torch_dtype"), "precision"),
        **dict.fromkeys(("pad_token_id", "streamer", "input_ids", "attention_mask"), "-"),
        "quantization_config": "quantization",
    },
    "vllm": {
        **dict.fromkeys(("max_tokens", "min_tokens", "ignore_eos", "n"), "max_output_tokens"),
        **dict.fromkeys(("temperature", "top_p", "top_k"), "decoding"),
        "repetition_penalty": "decoding.repetition_penalty",
        **dict.fromkeys(("model", "load_format", "skip_tokenizer_init"), "model / weights"),
        "dtype": "precision",
        "seed": "random_seed",
        **{k: f"vllm.{k}" for k in VLLMOptions.model_fields if k != "engine_args"},
        "disable_log_stats": "- (off, as users run the engine: docs/backends.md)",
        "quantization": "quantization",
    },
    "tensorrt": {
        **dict.fromkeys(("model", "load_format", "skip_tokenizer_init"), "model / weights"),
        "tensor_parallel_size": "tensorrt.tp_size",
        "dtype": "precision",
        **dict.fromkeys(("max_tokens", "min_tokens", "ignore_eos"), "max_output_tokens"),
        **dict.fromkeys(("temperature", "top_p", "top_k"), "decoding"),
        "repetition_penalty": "decoding.repetition_penalty",
        "kv_cache_config": "tensorrt.kv_cache_free_gpu_memory_fraction",
        **{k: f"tensorrt.{k}" for k in ("max_batch_size", "max_num_tokens")},
        "quant_config": "quantization",
    },
}


class SLO(_Strict):
    """Service-level objectives: a request meets them when every one set holds."""

    ttft_ms: float | None = Field(None, gt=0, description="time to first token, at most")
    tpot_ms: float | None = Field(None, gt=0, description="time per output token, at most")


class ServingOptions(_Strict):
    """The serving scenario's load (docs/serving.md): requests arrive over time at the
    engine's own server."""

    request_rate: float | Literal["inf"] = Field(
        "inf", description="requests per second, or inf: every request at once"
    )
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(
        1.0, gt=0.0, description="the gamma arrivals' shape (1 = Poisson; < 1 burstier)"
    )
    max_concurrency: int | None = Field(None, ge=1, description="cap on requests in flight")
    n_requests: int | None = Field(
        None, ge=1, description="requests to send (default: n_prompts, one per prompt)"
    )
    duration_s: float | None = Field(
        None, gt=0.0, description="send requests for this long instead of a count"
    )
    slo: SLO = SLO()

    @field_validator("request_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity", ".inf"):
            return "inf"
        if isinstance(value, float) and value == float("inf"):
            return "inf"
        return value

    @model_validator(mode="after")
    def _check(self) -> ServingOptions:
        if self.request_rate != "inf" and not 0 < self.request_rate < math.inf:
            raise ValueError(
                f"serving.request_rate must be above 0 requests/s (or inf), not {self.request_rate}"
            )
        if not math.isfinite(self.burstiness):
            raise ValueError(f"serving.burstiness must be a finite number, not {self.burstiness}")
        if self.n_requests is not None and self.duration_s is not None:
            raise ValueError("set serving.n_requests or serving.duration_s, not both")
        if self.duration_s is not None and self.request_rate == "inf":
            raise ValueError(
                "serving.duration_s needs a finite serving.request_rate: at an infinite "
                "rate every request is sent at once, so set serving.n_requests instead"
            )
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError(
                f"serving.burstiness is the gamma arrivals' shape; set arrival: gamma "
                f"(arrival is {self.arrival})"
            )
        return self

    @property
    def rate(self) -> float | None:
        """Requests per second, None for inf."""
        return None if self.request_rate == "inf" else float(self.request_rate)


BACKEND_OPTIONS: dict[str, type[_Strict]] = {
    "pytorch": PyTorchOptions,
    "vllm": VLLMOptions,
    "tensorrt": TensorRTOptions,
}


class ExperimentConfig(_Strict):
    """One point of a study: a model, a backend, and how to drive it."""

    model: str = Field(
        min_length=1, description="HF model id, local path, or shipped `llem/...` config"
    )
    backend: Backend
    precision: Precision = "bf16"
    weights: Weights = "pretrained"
    quantization: Quantization = Field(
        "none",
        description="none | fp8 | int8 | awq | gptq | bnb-nf4 | bnb-int8 (docs/quantization.md)",
    )
    batch_size: int = Field(1, ge=1)
    n_prompts: int = Field(100, ge=1)
    dataset: str = Field(
        "builtin", min_length=1, description="builtin | synthetic | path to .jsonl"
    )
    max_input_tokens: int = Field(256, ge=1)
    max_output_tokens: int = Field(128, ge=1)
    output_length: Literal["fixed", "natural"] = Field(
        "fixed",
        description="fixed: every response max_output_tokens long (EOS ignored); natural: a "
        "response ends at EOS, max_output_tokens at most",
    )
    warmup_runs: int = Field(2, ge=0, description="minimum full-length warmup passes")
    warmup_max_runs: int = Field(
        10, ge=0, description="cap on warmup passes while throughput settles"
    )
    warmup_cv_threshold: float = Field(0.05, gt=0.0, le=1.0)
    random_seed: int = Field(42, ge=0)
    decoding: Decoding = Decoding()
    scenario: Scenario = Field(
        "offline", description="offline: every prompt at once; serving: requests over time"
    )
    serving: ServingOptions | None = None
    pytorch: PyTorchOptions | None = None
    vllm: VLLMOptions | None = None
    tensorrt: TensorRTOptions | None = None

    @field_validator("quantization")
    @classmethod
    def _quantization(cls, value: str, info: ValidationInfo) -> str:
        """The support table's backend x method x weights (quantization.py); a field
        check, so the error names the key."""
        backend, weights = info.data.get("backend"), info.data.get("weights")
        if backend is not None and weights is not None:
            problem = config_problem(backend, value, weights)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        for other in BACKENDS:
            if other != self.backend and getattr(self, other) is not None:
                raise ValueError(
                    f"a `{other}:` section is set but backend is `{self.backend}`; "
                    f"remove it or set backend: {other}"
                )
        if self.serving is not None and self.scenario != "serving":
            raise ValueError(
                "a `serving:` section is set but scenario is `offline`; set scenario: serving "
                "or remove the section"
            )
        if self.scenario == "serving" and self.backend == "tensorrt" and self.weights == "dummy":
            raise ValueError(
                "scenario: serving with backend tensorrt needs weights: pretrained: "
                "trtllm-serve detokenises what it streams, and random weights come without "
                "a tokenizer (vllm serves dummy weights)"
            )
        if self.scenario == "serving" and self.backend not in SERVER_BACKENDS:
            servers = ", ".join(f"{b} ({what})" for b, what in SERVER_BACKENDS.items())
            raise ValueError(
                f"scenario: serving needs the engine's own server, and backend "
                f"`{self.backend}` has none; use one of {servers}"
            )
        pt = self.pytorch
        if self.quantization.startswith("bnb-") and pt is not None and pt.torch_compile:
            raise ValueError(
                f"quantization: {self.quantization} with pytorch.torch_compile: true: "
                "bitsandbytes layers do not compile (transformers runs them eagerly too); "
                "set torch_compile: false or use quantization: int8 or fp8 (torchao)"
            )
        reserved = RESERVED_ARGS[self.backend]
        for key in getattr(self.options(), "engine_args", {}):
            if key in reserved:
                instead = reserved[key]
                fix = "the harness sets it" if instead.startswith("-") else f"set {instead}"
                raise ValueError(
                    f"{self.backend}.engine_args.{key} is set by the harness; {fix} instead"
                )
        if self.warmup_max_runs < self.warmup_runs:
            raise ValueError(
                f"warmup_max_runs ({self.warmup_max_runs}) is below warmup_runs "
                f"({self.warmup_runs}); raise warmup_max_runs"
            )
        hf = self.dataset.startswith("hf:") and "/" in self.dataset
        if not (self.dataset in BUILTIN_DATASETS or self.dataset.endswith(".jsonl") or hf):
            raise ValueError(
                f"dataset `{self.dataset}` is neither a built-in set "
                f"({', '.join(BUILTIN_DATASETS)}), a path ending in .jsonl, "
                "nor a Hugging Face dataset `hf:<org>/<name>[:<split>]`"
            )
        return self

    def options(self) -> BaseModel:
        """The backend's own section, with defaults when the file gave none."""
        section = getattr(self, self.backend)
        return section if section is not None else BACKEND_OPTIONS[self.backend]()

    def canonical(self) -> dict[str, Any]:
        """Fully-resolved JSON form: the backend section filled in, used for hashing."""
        data = self.model_dump(mode="json")
        data[self.backend] = self.options().model_dump(mode="json")
        if not data[self.backend].get("engine_args"):  # none given: hashes as before
            data[self.backend].pop("engine_args", None)
        if self.output_length == "fixed":  # as before natural lengths existed: hashes hold
            del data["output_length"]
        if self.quantization == "none":  # as before the axis existed: hashes hold
            del data["quantization"]
        if self.scenario == "offline":  # as before the scenario existed: offline hashes hold
            del data["scenario"], data["serving"]
        else:
            data["serving"] = self.serving_options().model_dump(mode="json")
        return data

    def serving_options(self) -> ServingOptions:
        return self.serving if self.serving is not None else ServingOptions()

    def config_hash(self) -> str:
        return config_hash(self.canonical())


def config_hash(canonical: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
