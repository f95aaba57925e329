"""The quantization axis: one support table, read by the host's dry run and by the harness.

`quantization:` names a method (DESIGN.md's names). Each backend maps the methods it supports
to its engine's own mechanism; everything else is refused before anything runs, with the
combination and what is supported. Three things decide whether a point can run:

- **backend × method**: the table below;
- **weights**: online methods quantize whatever weights the engine builds, so they work on
  `weights: dummy`; pre-quantized formats (AWQ, GPTQ, ModelOpt FP8) are what a checkpoint
  holds, so they need `weights: pretrained` and a checkpoint in that format;
- **the GPU**: a lowest CUDA compute capability, or no GPU at all (`cpu`). The host checks
  the GPUs it can see (nvidia-smi) at dry run; the harness checks the device it got before
  the model loads (a `config`-phase error), which covers hosts that cannot see the GPUs
  (a SLURM login node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Quantization = Literal["none", "fp8", "int8", "awq", "gptq", "bnb-nf4", "bnb-int8"]
QUANTIZATIONS: tuple[str, ...] = ("none", "fp8", "int8", "awq", "gptq", "bnb-nf4", "bnb-int8")
BOTH = ("dummy", "pretrained")
PRETRAINED = ("pretrained",)


@dataclass(frozen=True)
class Support:
    """How one backend runs one method."""

    engine: str  # the engine's mechanism, as the docs and the result name it
    weights: tuple[str, ...]  # the `weights:` values it works with
    min_cc: float | None  # the lowest CUDA compute capability; None: any GPU
    cpu: bool  # runs without a GPU
    needs: str = ""  # what a pretrained checkpoint must hold, for the error's fix
    flag: str = ""  # the engine's own name for it, where the harness passes one (vLLM)
    module: str = ""  # a Python package the method needs beside the engine itself


SUPPORT: dict[str, dict[str, Support]] = {
    "pytorch": {
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
    },
    "vllm": {
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
    },
    "tensorrt": {
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
    },
}
# Why a method is missing from a backend, where there is more to say than "not supported".
NOT_SUPPORTED: dict[tuple[str, str], str] = {
    ("pytorch", "awq"): "the pytorch image ships no AWQ kernels (autoawq); use backend vllm",
    ("pytorch", "gptq"): "the pytorch image ships no GPTQ kernels (gptqmodel); use backend vllm",
    ("vllm", "int8"): "vLLM has no online int8; a W8A8 checkpoint (compressed-tensors) runs "
    "with quantization: none, as vLLM reads the method from it",
    ("vllm", "bnb-int8"): "vLLM reads 8-bit bitsandbytes only from pre-quantized checkpoints",
    **{
        ("tensorrt", m): "TensorRT-LLM's LLM API runs pre-quantized ModelOpt checkpoints and "
        "has no online quantization"
        for m in ("int8", "bnb-nf4", "bnb-int8")
    },
}


def engine_flag(backend: str, method: str) -> str:
    """The engine's own name for a supported method (vLLM's `quantization=` and the server's
    --quantization)."""
    return SUPPORT[backend][method].flag


def supported(backend: str) -> str:
    """The methods a backend supports, for an error message."""
    rows = SUPPORT.get(backend, {})
    return ", ".join(f"{m} ({'/'.join(s.weights)})" for m, s in rows.items()) or "none"


def config_problem(backend: str, method: str, weights: str) -> str | None:
    """Why backend × method × weights cannot run, or None when it can (on some GPU)."""
    if method == "none":
        return None
    support = SUPPORT.get(backend, {}).get(method)
    if support is None:
        why = NOT_SUPPORTED.get((backend, method), "the support table has no such entry")
        return (
            f"quantization: {method} is not supported by backend {backend} ({why}); "
            f"{backend} supports: {supported(backend)} (docs/quantization.md)"
        )
    if weights not in support.weights:
        online = [m for m, s in SUPPORT[backend].items() if "dummy" in s.weights]
        instead = (
            f"with dummy weights use an online method: {', '.join(online)}"
            if online
            else f"{backend} has no online method: each one reads a checkpoint"
        )
        return (
            f"quantization: {method} on backend {backend} needs weights: pretrained: it reads "
            f"{support.needs or 'a pre-quantized checkpoint'}, and random weights (weights: "
            f"dummy) are not one; {instead}"
        )
    return None


def gpu_problem(backend: str, method: str, gpus: list[tuple[str, float]]) -> str | None:
    """Why the method cannot run on these GPUs ((name, compute capability) each; an empty
    list is no GPU), or None."""
    support = SUPPORT.get(backend, {}).get(method)
    if method == "none" or support is None:
        return None
    if not gpus:
        if support.cpu:
            return None
        return (
            f"quantization: {method} on backend {backend} needs a GPU"
            + (f" of compute capability {support.min_cc} or above" if support.min_cc else "")
            + ", and none is visible; run it on a GPU host"
        )
    if support.min_cc is None:
        return None
    low = [f"{name} ({cc:g})" for name, cc in gpus if cc < support.min_cc - 1e-9]
    if low:
        return (
            f"quantization: {method} on backend {backend} ({support.engine}) needs compute "
            f"capability {support.min_cc:g} or above; {', '.join(low)} is below it"
        )
    return None


def library_problem(backend: str, method: str) -> str | None:
    """Why this Python cannot run the method (a package it needs beside the engine,
    `Support.module`, is not installed), or None. The pinned images carry them; a
    local-runner Python may not."""
    import importlib.util

    support = SUPPORT.get(backend, {}).get(method)
    if method == "none" or support is None or not support.module:
        return None
    if importlib.util.find_spec(support.module) is not None:
        return None
    return (
        f"quantization: {method} on backend {backend} needs the Python package "
        f"`{support.module}`, which this Python lacks. Fix: run it in the pinned {backend} "
        "image (`make images`), or install the harness's quantization extra "
        "(`pip install 'llem-harness[quantization]'`, as `make setup` does)"
    )


class CheckpointMismatch(ValueError):
    """The checkpoint's own quantization is not the one the study names (a config error)."""


# A checkpoint's quantization_config (quant_method, and ModelOpt's quant_algo) in the names
# of this axis; anything else is reported under its own name.
CHECKPOINT_NAMES = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "bitsandbytes": "bnb"}
MODELOPT_ALGOS = {"FP8": "fp8", "W4A16_AWQ": "awq", "W4A16_GPTQ": "gptq"}


def checkpoint_method(config: dict[str, Any] | None, hf_quant: dict[str, Any] | None) -> str:
    """The method a checkpoint holds, from its config's `quantization_config` or ModelOpt's
    `hf_quant_config.json`; "none" for an unquantized one."""
    q = dict(config or {})
    algo = q.get("quant_algo") or ((hf_quant or {}).get("quantization") or {}).get("quant_algo")
    method = str(q.get("quant_method") or ("modelopt" if algo else "none")).lower()
    if method == "modelopt" or (method == "none" and algo):
        return MODELOPT_ALGOS.get(str(algo), f"modelopt {algo}")
    return CHECKPOINT_NAMES.get(method, method)


def verify_checkpoint(model: str, method: str, found: str) -> None:
    """Refuse a run whose checkpoint holds another method than the study names: an engine
    that reads the method from the checkpoint would run it under the wrong name."""
    if found != method:
        raise CheckpointMismatch(
            f"quantization: {method}, but the checkpoint `{model}` holds "
            + ("no quantized weights" if found == "none" else f"{found} weights")
            + f"; set quantization: {found if found in QUANTIZATIONS else 'none'} for it, "
            "or use a checkpoint in that format"
        )
