"""FLOPs of a measured pass, from the model's config: the standard dense-transformer count.

Per layer the matrix products hold P_layer = d·(H·dh) (Q) + 2·d·(Hkv·dh) (K, V) +
(H·dh)·d (O) + 3·d·I (the gated MLP's gate, up and down) weights, and the LM head d·V.
A token costs 2 FLOPs per weight it passes through (a multiply and an add), and its attention
4·L·H·dh·c more, where c is how many positions it attends to (QKᵀ and the weighted sum of V,
each 2·H·dh per position and layer). So, for a prompt of n tokens and T output tokens:

- prefill: 2·L·P_layer·n + 2·d·V (logits for the last position only, as generate and vLLM
  compute them) + 4·L·H·dh·n(n+1)/2 (causal attention);
- decode: the first output token comes from the prefill; each of the other T − 1 steps costs
  2·(L·P_layer + d·V) + 4·L·H·dh·c, with c = n + j at step j.

What it leaves out, by design: embeddings (a lookup), norms, activations, rotary embeddings,
biases and softmax (under 1% for these shapes), and padding: the count is the useful work of
the prompts and tokens, not what a padded static batch makes the device do. MFU divides the
achieved rate by the dense (no sparsity) peak of the GPUs for the precision, from PEAK_TFLOPS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llem_harness.contract import Flops
from llem_harness.contract_env import Gpu

# Dense peak TFLOPS per GPU (NVIDIA datasheets; bf16/fp16 on tensor cores without sparsity;
# fp32 without TF32), matched against the NVML name in this order.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    (r"H200 NVL", {"bf16": 835.5, "fp16": 835.5, "fp32": 60.0}),
    (r"H200", {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9}),
    (r"H100 NVL", {"bf16": 835.5, "fp16": 835.5, "fp32": 60.0}),
    (r"H100 PCIe", {"bf16": 756.5, "fp16": 756.5, "fp32": 51.2}),
    (r"H100", {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9}),
    (r"A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5}),
    (r"L40S", {"bf16": 362.05, "fp16": 362.05, "fp32": 91.6}),
    (r"\bL4\b", {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3}),
    (r"\bA10G?\b", {"bf16": 125.0, "fp16": 125.0, "fp32": 31.2}),
]


# Decoders whose MLP is gated (gate, up, down) and whose every layer is dense.
GATED_DENSE = frozenset({"llama", "mistral", "qwen2", "qwen3"})


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Shape:
        """From a Hugging Face config (as a dict): llama, qwen2, mistral and their kin. Raises
        ValueError for shapes this count does not describe (mixtures of experts, MLPs
        without a gate)."""
        kind = str(cfg.get("model_type", ""))
        if kind not in GATED_DENSE:
            raise ValueError(
                f"model_type `{kind}` is not one of the dense gated-MLP decoders this count "
                f"describes ({', '.join(sorted(GATED_DENSE))})"
            )
        experts = [cfg.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts")]
        if any(isinstance(e, int) and e > 1 for e in experts):
            raise ValueError("a mixture of experts: the dense count does not apply")
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        return cls(
            layers=int(cfg["num_hidden_layers"]),
            hidden=hidden,
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            intermediate=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
        )

    @property
    def layer_weights(self) -> int:
        d, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return d * q + 2 * d * kv + q * d + 3 * d * self.intermediate

    @property
    def head_weights(self) -> int:
        return self.hidden * self.vocab

    @property
    def attention_per_position(self) -> int:
        """FLOPs for one token attending to one position, over all layers."""
        return 4 * self.layers * self.heads * self.head_dim


def prefill_flops(shape: Shape, n: int) -> int:
    body = 2 * shape.layers * shape.layer_weights * n
    return body + 2 * shape.head_weights + shape.attention_per_position * n * (n + 1) // 2


def decode_flops(shape: Shape, n: int, t: int) -> int:
    """The T − 1 decode steps after a prompt of n tokens (the prefill made the first token)."""
    steps = max(t - 1, 0)
    per_step = 2 * (shape.layers * shape.layer_weights + shape.head_weights)
    contexts = steps * n + steps * (steps + 1) // 2  # sum of n + j for j = 1 .. steps
    return steps * per_step + shape.attention_per_position * contexts


def pass_flops(shape: Shape, prompt_lengths: Sequence[int], outputs: int) -> tuple[int, int]:
    """(prefill, decode) FLOPs of a pass over prompts of these lengths, `outputs` tokens each."""
    prefill = sum(prefill_flops(shape, n) for n in prompt_lengths)
    decode = sum(decode_flops(shape, n, outputs) for n in prompt_lengths)
    return prefill, decode


def peak_tflops(gpu_name: str | None, precision: str) -> tuple[float | None, str | None]:
    """The dense peak of one GPU for `precision`, or None and why."""
    if not gpu_name:
        return None, "no GPU: MFU needs a GPU's peak"
    for pattern, peaks in PEAK_TFLOPS:
        if re.search(pattern, gpu_name):
            if precision in peaks:
                return peaks[precision], None
            return None, f"no {precision} peak listed for {gpu_name}"
    return None, f"`{gpu_name}` is not in the peak table (llem_harness/flops.py PEAK_TFLOPS)"


def model_config(model: str, weights: str) -> tuple[dict[str, Any] | None, str | None]:
    """The model's config as a dict: a shipped one for dummy weights, else the Hugging Face
    cache's (through transformers, offline)."""
    from llem_harness.models import shipped_config

    if weights == "dummy":
        cfg = shipped_config(model)
        return (cfg, None) if cfg is not None else (None, f"no shipped config for `{model}`")
    try:
        import transformers

        auto = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
    except Exception as exc:  # not cached, no transformers, an unknown architecture
        return None, f"the config of `{model}` could not be read: {type(exc).__name__}: {exc}"
    data: dict[str, Any] = auto.to_dict()
    return data, None


def flops_block(
    model: str,
    weights: str,
    precision: str,
    prompt_lengths: Sequence[int],
    outputs: int,
    duration_s: float,
    energy_j: float | None,
    gpus: Sequence[Gpu],
) -> Flops:
    """The result's `flops` block for a measured pass."""
    cfg, why = model_config(model, weights)
    if cfg is None:
        return Flops(unavailable_reason=why)
    try:
        shape = Shape.from_config(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        return Flops(unavailable_reason=f"no FLOPs count for `{model}`: {exc}")
    prefill, decode = pass_flops(shape, prompt_lengths, outputs)
    total = prefill + decode
    achieved = total / duration_s / 1e12 if duration_s > 0 else None
    peaks = [peak_tflops(g.name, precision) for g in gpus] or [peak_tflops(None, "")]
    missing = next((r for p, r in peaks if p is None), None)
    peak = None if missing else sum(p for p, _ in peaks if p is not None)
    return Flops(
        prefill=float(prefill),
        decode=float(decode),
        total=float(total),
        achieved_tflops=achieved,
        mfu=None if peak is None or achieved is None else achieved / peak,
        energy_per_tflop_j=None if energy_j is None else energy_j / (total / 1e12),
        unavailable_reason=missing,
    )
