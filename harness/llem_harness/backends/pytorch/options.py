"""The `pytorch:` section of a study, and the engine keywords the harness sets itself."""

from __future__ import annotations

from typing import Literal

from llem_harness.backends.spec import EngineOptions


class PyTorchOptions(EngineOptions):
    """transformers `generate` knobs."""

    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    cache_implementation: Literal["dynamic", "static"] = "static"
    torch_compile: bool = False


# engine_args keys the harness sets from other fields -> the field that does ("-": itself)
RESERVED_ARGS: dict[str, str] = {
    **dict.fromkeys(("max_new_tokens", "min_new_tokens"), "max_output_tokens"),
    **dict.fromkeys(("do_sample", "temperature", "top_p", "top_k"), "decoding"),
    "repetition_penalty": "decoding.repetition_penalty",
    "cache_implementation": "pytorch.cache_implementation",
    "attn_implementation": "pytorch.attn_implementation",
    **dict.fromkeys(("dtype", "torch_dtype"), "precision"),
    **dict.fromkeys(("pad_token_id", "streamer", "input_ids", "attention_mask"), "-"),
    "quantization_config": "quantization",
}
