"""Which models the harness ships a config for (`llem_harness/models/`), for `weights: dummy`:
such a run builds its model and its byte-level tokenizer from the harness alone. Apart from the
model code (models/), so that the host may ask `needs_hub` without importing an engine."""

from __future__ import annotations

SHIPPED: dict[str, str] = {
    "llem/tiny-llama": "tiny-llama.json",
    "meta-llama/Llama-3.2-1B": "llama-3.2-1b.json",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b.json",
    "Qwen/Qwen2.5-7B": "qwen2.5-7b.json",
    "mistralai/Mistral-7B-v0.3": "mistral-7b-v0.3.json",
}


def needs_hub(model: str, weights: str, *, engine_args: bool = False) -> bool:
    """Whether a run of `model` may need the Hugging Face hub: not with `weights: dummy` and a
    config shipped here, which build the model and its byte-level tokenizer from nothing else
    (the runners give such a run no network), unless the run has engine arguments, which may
    name another model (a draft model for speculative decoding) that the engine fetches."""
    return engine_args or not (weights == "dummy" and model in SHIPPED)
