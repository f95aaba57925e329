"""Model configs shipped with the harness, for `weights: dummy` (no download needed).

The real-architecture files carry the published shapes (layers, widths, heads, vocabulary);
options that do not change the compute of short contexts (RoPE scaling) are left out.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from llem_harness.shipped import SHIPPED

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


def tokenize(
    text: str, tokenizer: Any, vocab_size: int, max_tokens: int | None = None
) -> list[int]:
    """With a real tokenizer (pretrained weights), its ids, through the model's chat template
    (one user turn and the generation prompt) when it has one; for dummy weights, the
    byte-level ids folded into the vocabulary, identical on every backend.

    A templated prompt longer than `max_tokens` is fitted by shortening its text, not its ids,
    so the template's end (the generation prompt) stays; callers cut any other prompt."""
    if tokenizer is None:
        return [t % vocab_size for t in byte_tokenize(text)]
    if not getattr(tokenizer, "chat_template", None):
        ids: list[int] = tokenizer(text, add_special_tokens=True)["input_ids"]
        return ids
    chat = _chat_ids(tokenizer, text)
    while max_tokens is not None and len(chat) > max_tokens:
        if not text:
            raise ValueError(
                f"the chat template alone is {len(chat)} tokens, over max_input_tokens "
                f"({max_tokens}); raise max_input_tokens"
            )
        text = text[: int(len(text) * max_tokens / len(chat) * 0.95)]
        chat = _chat_ids(tokenizer, text)
    return chat


def _chat_ids(tokenizer: Any, text: str) -> list[int]:
    out: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    out = out["input_ids"] if hasattr(out, "keys") else out
    return [int(t) for t in out]


class ModelNotFoundError(RuntimeError):
    """The model is neither shipped, nor a local path, nor in the HF cache."""


def dummy_config(model_id: str) -> Any:
    """A transformers config for `weights: dummy`: shipped, or from the local HF cache."""
    import transformers

    shipped = shipped_config(model_id)
    if shipped is not None:
        data = dict(shipped)
        return transformers.AutoConfig.for_model(data.pop("model_type"), **data)
    try:
        return transformers.AutoConfig.from_pretrained(model_id, local_files_only=True)
    except OSError as exc:
        raise ModelNotFoundError(
            f"no config for `{model_id}`: it is not shipped ({', '.join(SHIPPED)}) and "
            "not in the local Hugging Face cache"
        ) from exc


def dummy_model_dir(model_id: str, folder: Path) -> tuple[Path, int]:
    """Write the model's config.json (with its architecture) into `folder`, for engines that
    load a model folder with random weights. Returns the folder and the vocabulary size."""
    import transformers

    config = dummy_config(model_id)
    if not getattr(config, "architectures", None):
        model_class: Any = transformers.AutoModelForCausalLM._model_mapping[type(config)]
        config.architectures = [model_class.__name__]
    config.save_pretrained(str(folder))
    return folder, int(config.vocab_size)
