"""The `tensorrt:` section of a study, and the engine keywords the harness sets itself."""

from __future__ import annotations

from pydantic import Field

from llem_harness.backends.spec import EngineOptions


class TensorRTOptions(EngineOptions):
    """TensorRT-LLM engine knobs (LLM API)."""

    max_batch_size: int = Field(256, ge=1)
    tp_size: int = Field(1, ge=1)
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0.0, le=1.0)
    max_num_tokens: int | None = Field(None, ge=1)


# engine_args keys the harness sets from other fields -> the field that does
RESERVED_ARGS: dict[str, str] = {
    **dict.fromkeys(("model", "load_format", "skip_tokenizer_init"), "model / weights"),
    "tensor_parallel_size": "tensorrt.tp_size",
    "dtype": "precision",
    **dict.fromkeys(("max_tokens", "min_tokens", "ignore_eos"), "max_output_tokens"),
    **dict.fromkeys(("temperature", "top_p", "top_k"), "decoding"),
    "repetition_penalty": "decoding.repetition_penalty",
    "kv_cache_config": "tensorrt.kv_cache_free_gpu_memory_fraction",
    **{k: f"tensorrt.{k}" for k in ("max_batch_size", "max_num_tokens")},
    "quant_config": "quantization",
}
