"""FLOPs from the model config (llem_harness/flops.py) against counts worked by hand."""

from __future__ import annotations

import pytest

from llem_harness.flops import Shape, decode_flops, pass_flops, peak_tflops, prefill_flops
from llem_harness.models import shipped_config


def shape(model: str) -> Shape:
    cfg = shipped_config(model)
    assert cfg is not None
    return Shape.from_config(cfg)


def test_llama_3_2_1b_by_hand() -> None:
    s = shape("meta-llama/Llama-3.2-1B")
    # per layer: Q 2048*2048 + K,V 2*2048*512 + O 2048*2048 + MLP 3*2048*8192
    assert s.layer_weights == 4_194_304 + 2_097_152 + 4_194_304 + 50_331_648
    assert s.layers * s.layer_weights + s.head_weights == 1_235_746_816  # the 1.24B model
    assert s.attention_per_position == 4 * 16 * 32 * 64
    # prefill of 128 tokens: 2*973,078,528*128 + 2*262,668,288 + 131,072*128*129/2
    assert prefill_flops(s, 128) == 249_108_103_168 + 525_336_576 + 1_082_130_432
    # 127 decode steps after it: 127 * 2*1,235,746,816 + 131,072 * (127*128 + 127*128/2)
    assert decode_flops(s, 128, 128) == 313_879_691_264 + 3_196_059_648


def test_qwen2_5_7b_by_hand() -> None:
    s = shape("Qwen/Qwen2.5-7B")
    # Q 3584^2 + K,V 2*3584*512 + O 3584^2 + MLP 3*3584*18944; untied head 3584*152064
    assert s.layer_weights == 12_845_056 + 3_670_016 + 12_845_056 + 203_685_888
    assert s.layers * s.layer_weights == 6_525_288_448 and s.head_weights == 544_997_376
    assert prefill_flops(s, 1) == 2 * 6_525_288_448 + 2 * 544_997_376 + 4 * 28 * 28 * 128


def test_a_pass_sums_its_prompts_and_one_output_token_has_no_decode() -> None:
    s = shape("meta-llama/Llama-3.2-1B")
    prefill, decode = pass_flops(s, [128, 64], 1)
    assert prefill == prefill_flops(s, 128) + prefill_flops(s, 64) and decode == 0


@pytest.mark.parametrize(
    ("name", "precision", "peak"),
    [
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 PCIe", "fp16", 756.5),
        ("NVIDIA A100-SXM4-80GB", "fp32", 19.5),
        ("NVIDIA L40S", "bf16", 362.05),
        ("NVIDIA L4", "bf16", 121.0),
    ],
)
def test_peaks_by_gpu_name(name: str, precision: str, peak: float) -> None:
    assert peak_tflops(name, precision) == (peak, None)


def test_no_peak_says_why() -> None:
    assert peak_tflops(None, "bf16")[1] == "no GPU: MFU needs a GPU's peak"
    value, why = peak_tflops("NVIDIA GeForce RTX 4090", "bf16")
    assert value is None and why is not None and "not in the peak table" in why


def test_shapes_the_count_does_not_describe_are_refused() -> None:
    from llem_harness.flops import flops_block  # noqa: F401  (the block turns it into a reason)

    base = shipped_config("meta-llama/Llama-3.2-1B")
    assert base is not None
    with pytest.raises(ValueError, match="mixture of experts"):
        Shape.from_config({**base, "num_local_experts": 8})
    with pytest.raises(ValueError, match="model_type `phi`"):
        Shape.from_config({**base, "model_type": "phi"})
