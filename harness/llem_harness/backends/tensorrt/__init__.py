"""The `tensorrt` engine: TensorRT-LLM's LLM API (backend.py) and `trtllm-serve` for the
serving scenario (server.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llem_harness.backends.spec import EngineSpec, Support, options_of
from llem_harness.backends.tensorrt.options import RESERVED_ARGS, TensorRTOptions

if TYPE_CHECKING:
    from llem_harness.config import ExperimentConfig

PRETRAINED = ("pretrained",)
NO_ONLINE = "TensorRT-LLM's LLM API runs pre-quantized ModelOpt checkpoints and has no online "
NO_ONLINE += "quantization"


def _check(cfg: ExperimentConfig) -> str | None:
    if cfg.scenario == "serving" and cfg.weights == "dummy":
        return (
            "scenario: serving with backend tensorrt needs weights: pretrained: "
            "trtllm-serve detokenises what it streams, and random weights come without "
            "a tokenizer"
        )
    return None


# fmt: off
QUANTIZATION = {
    "fp8": Support(
        "a ModelOpt FP8 checkpoint, read as it is",
        PRETRAINED,
        8.9,
        cpu=False,
        needs="a ModelOpt FP8 checkpoint (hf_quant_config.json or quantization_config)",
    ),
    "awq": Support(
        "a W4A16 AWQ checkpoint, read as it is",
        PRETRAINED,
        8.0,
        cpu=False,
        needs="an AWQ checkpoint",
    ),
    "gptq": Support(
        "a W4A16 GPTQ checkpoint, read as it is",
        PRETRAINED,
        8.0,
        cpu=False,
        needs="a GPTQ checkpoint",
    ),
}
# fmt: on


SPEC = EngineSpec(
    name="tensorrt",
    label="TensorRT-LLM",
    options=TensorRTOptions,
    backend="llem_harness.backends.tensorrt.backend:TensorRTBackend",
    reserved_args=RESERVED_ARGS,
    imports=("torch", "tensorrt_llm"),
    packages=("tensorrt_llm",),
    distributions=("tensorrt_llm", "tensorrt-llm"),
    quantization=QUANTIZATION,
    unsupported=dict.fromkeys(("int8", "bnb-nf4", "bnb-int8"), NO_ONLINE),
    server="llem_harness.backends.tensorrt.server:TensorRTServer",
    server_label="trtllm-serve",
    gpus=lambda cfg: options_of(cfg, TensorRTOptions).tp_size,
    concurrency=lambda cfg: options_of(cfg, TensorRTOptions).max_batch_size,
    check=_check,
)
