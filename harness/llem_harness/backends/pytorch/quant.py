"""Online quantization of a transformers model, for the pytorch backend (docs/quantization.md).

The model is built (random or pretrained weights) in the study's precision, then its linear
layers are quantized in place, the output head kept as it is (as transformers' and vLLM's
quantizers do): torchao for fp8 and int8, bitsandbytes for bnb-nf4 and bnb-int8. The same
path serves dummy and pretrained weights, so the two quantize the same layers.
"""

from __future__ import annotations

from typing import Any

KEEP = ("lm_head",)  # layers left in the study's precision


def _keep(name: str) -> bool:
    return name.split(".")[-1] in KEEP


def quantize(model: Any, method: str, dtype: Any, device: Any) -> dict[str, Any]:
    """Quantize `model`'s linear layers; it ends on `device`. Returns what was done, for the
    result's backend details."""
    import importlib.metadata

    library = "torchao" if method in ("fp8", "int8") else "bitsandbytes"
    if method in ("fp8", "int8"):
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            Int8WeightOnlyConfig,
            PerRow,
            quantize_,
        )

        model.to(device)
        config: Any = (
            Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
            if method == "fp8"
            else Int8WeightOnlyConfig()
        )
        quantize_(model, config, filter_fn=lambda m, fqn: _linear(m) and not _keep(fqn))
    elif method in ("bnb-nf4", "bnb-int8"):
        _bitsandbytes(model, method, dtype)
        model.to(device)  # bitsandbytes quantizes a parameter as it moves
    else:
        raise ValueError(f"the pytorch backend has no online quantization `{method}`")
    layers = [
        (name, mod)
        for name, mod in model.named_modules()
        if not _keep(name) and hasattr(mod, "weight") and _quantized(mod.weight)
    ]
    first = layers[0][1].weight if layers else None
    return {
        "method": method,
        "library": f"{library} {importlib.metadata.version(library)}",
        "layers_quantized": len(layers),
        "kept": list(KEEP),
        "weight_format": None if first is None else f"{type(first).__name__} ({first.dtype})",
    }


def _linear(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear)


def _quantized(weight: Any) -> bool:
    """A weight no longer a plain floating-point tensor (a torchao subclass or a bitsandbytes
    parameter): the check that the method really took."""
    import torch

    return type(weight) not in (torch.Tensor, torch.nn.Parameter) or not weight.is_floating_point()


def _bitsandbytes(model: Any, method: str, dtype: Any) -> None:
    import bitsandbytes as bnb

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not _linear(child) or name in KEEP:
                continue
            bias = child.bias is not None
            data = child.weight.data
            if method == "bnb-nf4":
                new: Any = bnb.nn.Linear4bit(
                    child.in_features, child.out_features, bias=bias, compute_dtype=dtype,
                    quant_type="nf4", device="meta",
                )  # fmt: skip
                new.weight = bnb.nn.Params4bit(data, requires_grad=False, quant_type="nf4")
            else:
                new = bnb.nn.Linear8bitLt(
                    child.in_features, child.out_features, bias=bias, has_fp16_weights=False,
                    device="meta",
                )  # fmt: skip
                # Int8Params quantizes only on a move from the CPU
                new.weight = bnb.nn.Int8Params(
                    data.cpu(), requires_grad=False, has_fp16_weights=False
                )
            if bias:
                new.bias = child.bias
            setattr(parent, name, new)
