"""The `pytorch` engine: transformers' `generate` on torch (backend.py), with torchao and
bitsandbytes quantization (quant.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llem_harness.backends.pytorch.options import RESERVED_ARGS, PyTorchOptions
from llem_harness.backends.spec import EngineSpec, Support, options_of

if TYPE_CHECKING:
    from llem_harness.config import ExperimentConfig

BOTH = ("dummy", "pretrained")


def _check(cfg: ExperimentConfig) -> str | None:
    if cfg.quantization.startswith("bnb-") and options_of(cfg, PyTorchOptions).torch_compile:
        return (
            f"quantization: {cfg.quantization} with pytorch.torch_compile: true: "
            "bitsandbytes layers do not compile (transformers runs them eagerly too); "
            "set torch_compile: false or use quantization: int8 or fp8 (torchao)"
        )
    return None


# fmt: off
QUANTIZATION = {
    "fp8": Support(
        "torchao Float8DynamicActivationFloat8WeightConfig (per-row scales, online)",
        BOTH,
        8.9,
        cpu=False,
        module="torchao",
    ),
    "int8": Support(
        "torchao Int8WeightOnlyConfig (online)", BOTH, None, cpu=True, module="torchao"
    ),
    "bnb-nf4": Support(
        "bitsandbytes Linear4bit, nf4, compute in the study's precision (online)",
        BOTH,
        6.0,
        cpu=True,
        module="bitsandbytes",
    ),
    "bnb-int8": Support(
        "bitsandbytes Linear8bitLt, LLM.int8() (online)",
        BOTH,
        7.5,
        cpu=True,
        module="bitsandbytes",
    ),
}
# fmt: on


SPEC = EngineSpec(
    name="pytorch",
    label="PyTorch (transformers)",
    options=PyTorchOptions,
    backend="llem_harness.backends.pytorch.backend:PyTorchBackend",
    reserved_args=RESERVED_ARGS,
    # transformers' top module is lazy: its modelling and generation code is imported by the
    # first `from_config`/`from_pretrained` (seconds), so it is imported ahead, not in load_s
    imports=(
        "torch",
        "transformers",
        "transformers.modeling_utils",
        "transformers.generation.utils",
        "transformers.models.auto.modeling_auto",
    ),
    packages=("torch", "transformers"),
    distributions=("transformers",),
    static_batch=True,
    gguf=True,
    quantization=QUANTIZATION,
    unsupported={
        "awq": "the pytorch image ships no AWQ kernels (autoawq)",
        "gptq": "the pytorch image ships no GPTQ kernels (gptqmodel)",
    },
    cache_vars={"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"},
    bytecode_files=(
        "torch/_inductor/compile_fx.py",
        "torch/_dynamo/symbolic_convert.py",
        "transformers/modeling_utils.py",
    ),
    check=_check,
)
