"""The quantization axis: the engines' support rows, read by the host's dry run and the harness.

`quantization:` names a method (DESIGN.md's names). Each backend maps the methods it supports
to its engine's own mechanism; everything else is refused before anything runs, with the
combination and what is supported. Three things decide whether a point can run:

- **backend × method**: the engine's rows (`quantization` of its EngineSpec, in its package);
- **weights**: online methods quantize whatever weights the engine builds, so they work on
  `weights: dummy`; pre-quantized formats (AWQ, GPTQ, ModelOpt FP8) are what a checkpoint
  holds, so they need `weights: pretrained` and a checkpoint in that format;
- **the GPU**: a lowest CUDA compute capability, or no GPU at all (`cpu`). The host checks
  the GPUs it can see (nvidia-smi) at dry run; the harness checks the device it got before
  the model loads (a `config`-phase error), which covers hosts that cannot see the GPUs
  (a SLURM login node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from llem_harness.backends import ENGINES
from llem_harness.backends.spec import Support

if TYPE_CHECKING:
    from llem_harness.config import ExperimentConfig

Quantization = Literal["none", "fp8", "int8", "awq", "gptq", "bnb-nf4", "bnb-int8"]
QUANTIZATIONS: tuple[str, ...] = ("none", "fp8", "int8", "awq", "gptq", "bnb-nf4", "bnb-int8")


def _rows(backend: str) -> Mapping[str, Support]:
    """The engine's quantization rows (its EngineSpec), none for an unknown engine."""
    spec = ENGINES.get(backend)
    return spec.quantization if spec is not None else {}


def supported(backend: str) -> str:
    """The methods a backend supports, for an error message."""
    rows = _rows(backend)
    return ", ".join(f"{m} ({'/'.join(s.weights)})" for m, s in rows.items()) or "none"


def config_problem(backend: str, method: str, weights: str) -> str | None:
    """Why backend × method × weights cannot run, or None when it can (on some GPU)."""
    if method == "none":
        return None
    support = _rows(backend).get(method)
    if support is None:
        spec = ENGINES.get(backend)
        why = spec.unsupported.get(method) if spec is not None else None
        others = [n for n, s in ENGINES.items() if method in s.quantization]
        return (
            f"quantization: {method} is not supported by backend {backend} "
            f"({why or 'the support table has no such entry'}); {backend} supports: "
            f"{supported(backend)}"
            + (f"; backends that run {method}: {', '.join(others)}" if others else "")
            + " (docs/quantization.md)"
        )
    if weights not in support.weights:
        online = [m for m, s in _rows(backend).items() if "dummy" in s.weights]
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
    support = _rows(backend).get(method)
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

    support = _rows(backend).get(method)
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


def run_problem(cfg: ExperimentConfig, n_gpus: int) -> str | None:
    """At the run's start, in its own process: why the method cannot run on the GPUs it got
    (which the host may not see) or in this Python, or None."""
    if cfg.quantization == "none":
        return None
    from llem_harness.energy.nvml_device import run_gpus

    gpus = run_gpus(n_gpus)
    problem = None if gpus is None else gpu_problem(cfg.backend, cfg.quantization, gpus)
    return problem or library_problem(cfg.backend, cfg.quantization)


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
