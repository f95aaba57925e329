"""The `vllm:` section of a study, and the engine keywords the harness sets itself."""

from __future__ import annotations

from pydantic import Field

from llem_harness.backends.spec import EngineOptions


class VLLMOptions(EngineOptions):
    """vLLM engine knobs (offline `LLM` API)."""

    max_num_seqs: int = Field(256, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    enforce_eager: bool = False
    max_model_len: int | None = Field(None, ge=1)
    enable_prefix_caching: bool = False


# engine_args keys the harness sets from other fields -> the field that does ("-": itself)
RESERVED_ARGS: dict[str, str] = {
    **dict.fromkeys(("max_tokens", "min_tokens", "ignore_eos", "n"), "max_output_tokens"),
    **dict.fromkeys(("temperature", "top_p", "top_k"), "decoding"),
    "repetition_penalty": "decoding.repetition_penalty",
    **dict.fromkeys(("model", "load_format", "skip_tokenizer_init"), "model / weights"),
    "dtype": "precision",
    "seed": "random_seed",
    **{k: f"vllm.{k}" for k in VLLMOptions.model_fields if k != "engine_args"},
    "disable_log_stats": "- (off, as users run the engine: docs/backends.md)",
    "quantization": "quantization",
}
