"""The dummy model's folder for `weights: dummy`, shared by the offline engine and the server.

vLLM's compile cache is keyed on the model path among other things (`ModelConfig.compute_hash`),
so with a persistent engine cache ($LLEM_ENGINE_CACHE) the folder has a stable path there, named
by a hash of its config.json; a fresh temporary name would miss the cache on every run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from llem_harness.cache_folders import cache_root, made_once
from llem_harness.models import dummy_model_dir


def stable_dummy_model(model_id: str) -> tuple[Path, int, str | None]:
    """(the folder, the vocabulary size, a temporary folder for the caller to remove or
    None): stable under $LLEM_ENGINE_CACHE, else temporary."""
    vocab: list[int] = []

    def make(folder: Path) -> None:
        vocab.append(dummy_model_dir(model_id, folder)[1])

    def name(folder: Path) -> str:
        digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
        return f"{model_id.replace('/', '--')}-{digest}"

    folder, tmp = made_once(cache_root("vllm-models"), make, name)
    return folder, vocab[0], tmp
