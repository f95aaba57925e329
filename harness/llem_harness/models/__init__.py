"""Model configs shipped with the harness, for `weights: dummy` (no download needed).

The real-architecture files carry the published shapes (layers, widths, heads, vocabulary);
options that do not change the compute of short contexts (RoPE scaling) are left out.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SHIPPED: dict[str, str] = {
    "llem/tiny-llama": "tiny-llama.json",
    "meta-llama/Llama-3.2-1B": "llama-3.2-1b.json",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b.json",
    "Qwen/Qwen2.5-7B": "qwen2.5-7b.json",
    "mistralai/Mistral-7B-v0.3": "mistral-7b-v0.3.json",
}

# Byte-level tokenizer for dummy-weight models: id = byte + 3 (0 pad, 1 bos, 2 eos).
# It is identical on every backend, so every backend sees the same token ids.
PAD_ID, BOS_ID, EOS_ID, BYTE_OFFSET = 0, 1, 2, 3


def shipped_config(model_id: str) -> dict[str, Any] | None:
    name = SHIPPED.get(model_id)
    if name is None:
        return None
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def byte_tokenize(text: str) -> list[int]:
    return [BOS_ID] + [b + BYTE_OFFSET for b in text.encode("utf-8")]
