"""What every engine's backend shares for prompts: tokenize and vocab_size (kept out of
backends/base.py, which the host imports: this one reaches the tokenizers)."""

from __future__ import annotations

from typing import Any

from llem_harness.config import ExperimentConfig
from llem_harness.models import tokenize


class Tokenizing:
    """`tokenize` and `vocab_size` for a backend that holds its config, its tokenizer (None
    with dummy weights: byte-level ids) and its vocabulary size, as every engine does
    (models.tokenize: the chat template with pretrained weights, the input length cap)."""

    cfg: ExperimentConfig | None
    _tokenizer: Any
    _vocab: int

    def tokenize(self, text: str) -> list[int]:
        limit = self.cfg.max_input_tokens if self.cfg is not None else None
        return tokenize(text, self._tokenizer, self._vocab, limit)

    @property
    def vocab_size(self) -> int:
        return self._vocab

    def decode(self, ids: list[int]) -> str | None:
        """A response's text (special tokens left out), or None without a real tokenizer."""
        if self._tokenizer is None:
            return None
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))
