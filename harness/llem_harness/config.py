"""ExperimentConfig: what one experiment measures. Shared by the host and the harness.

Every model forbids unknown keys, so a typo in a study file is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BACKENDS: tuple[str, ...] = ("pytorch", "vllm", "tensorrt")
Backend = Literal["pytorch", "vllm", "tensorrt"]
Precision = Literal["fp32", "fp16", "bf16"]
Weights = Literal["pretrained", "dummy"]

BUILTIN_DATASETS: tuple[str, ...] = ("builtin", "synthetic")


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


class VLLMOptions(_Strict):
    """vLLM engine knobs (offline `LLM` API)."""

    max_num_seqs: int = Field(256, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    enforce_eager: bool = False
    max_model_len: int | None = Field(None, ge=1)
    enable_prefix_caching: bool = False


class TensorRTOptions(_Strict):
    """TensorRT-LLM engine knobs (LLM API)."""

    max_batch_size: int = Field(256, ge=1)
    tp_size: int = Field(1, ge=1)
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0.0, le=1.0)
    max_num_tokens: int | None = Field(None, ge=1)


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
    batch_size: int = Field(1, ge=1)
    n_prompts: int = Field(100, ge=1)
    dataset: str = Field(
        "builtin", min_length=1, description="builtin | synthetic | path to .jsonl"
    )
    max_input_tokens: int = Field(256, ge=1)
    max_output_tokens: int = Field(128, ge=1)
    warmup_runs: int = Field(2, ge=0, description="minimum full-length warmup passes")
    warmup_max_runs: int = Field(
        10, ge=0, description="cap on warmup passes while throughput settles"
    )
    warmup_cv_threshold: float = Field(0.05, gt=0.0, le=1.0)
    random_seed: int = Field(42, ge=0)
    decoding: Decoding = Decoding()
    pytorch: PyTorchOptions | None = None
    vllm: VLLMOptions | None = None
    tensorrt: TensorRTOptions | None = None

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        for other in BACKENDS:
            if other != self.backend and getattr(self, other) is not None:
                raise ValueError(
                    f"a `{other}:` section is set but backend is `{self.backend}`; "
                    f"remove it or set backend: {other}"
                )
        if self.warmup_max_runs < self.warmup_runs:
            raise ValueError(
                f"warmup_max_runs ({self.warmup_max_runs}) is below warmup_runs "
                f"({self.warmup_runs}); raise warmup_max_runs"
            )
        if not (self.dataset in BUILTIN_DATASETS or self.dataset.endswith(".jsonl")):
            raise ValueError(
                f"dataset `{self.dataset}` is neither a built-in set "
                f"({', '.join(BUILTIN_DATASETS)}) "
                "nor a path ending in .jsonl"
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
        return data

    def config_hash(self) -> str:
        return config_hash(self.canonical())


def config_hash(canonical: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
