"""The dummy model's folder for `weights: dummy`, shared by the offline engine and the server.

vLLM's compile cache is keyed on the model path among other things (`ModelConfig.compute_hash`),
so with a persistent engine cache ($LLEM_ENGINE_CACHE) the folder has a stable path there, named
by a hash of its config.json; a fresh temporary name would miss the cache on every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from llem_harness.models import dummy_model_dir


def stable_dummy_model(model_id: str) -> tuple[Path, int, str | None]:
    """(the folder, the vocabulary size, a temporary folder for the caller to remove or
    None): stable under $LLEM_ENGINE_CACHE, else temporary."""
    cache = os.environ.get("LLEM_ENGINE_CACHE")
    models = Path(cache) / "vllm-models" if cache else None
    try:  # staged beside its final place: the rename below must not cross filesystems
        if models is not None:
            models.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=models))
        staging.chmod(0o755)  # mkdtemp makes it private; other runs read it
    except OSError:  # a read-only cache
        models, staging = None, Path(tempfile.mkdtemp(prefix="llem-vllm-model-"))
    folder, vocab = dummy_model_dir(model_id, staging)
    if models is None:
        return folder, vocab, str(staging)
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
    stable = models / f"{model_id.replace('/', '--')}-{digest}"
    try:
        if not (stable / "config.json").exists():
            os.replace(staging, stable)  # atomic: a concurrent run sees all or nothing
    except OSError:
        pass  # another run won the rename
    if (stable / "config.json").exists():
        shutil.rmtree(staging, ignore_errors=True)
        return stable, vocab, None
    return folder, vocab, str(staging)
