"""Folders made once under the persistent engine cache ($LLEM_ENGINE_CACHE, which every
runner mounts) and shared by every later run: vLLM's dummy model folders
(backends/vllm/models.py) and GGUF models unpacked into Hugging Face folders (gguf_dense.py).

A folder is made in a private staging folder beside its final place, then renamed into place
in one step, so a concurrent run sees all of it or none; the loser of a race removes its own
copy. Without a cache (or with a read-only one) the folder is temporary, and the caller
removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENGINE_CACHE_ENV = "LLEM_ENGINE_CACHE"
MARKER = "config.json"  # a finished folder has it


def cache_root(sub: str) -> Path | None:
    """`sub` under the engine cache, or None without one."""
    cache = os.environ.get(ENGINE_CACHE_ENV)
    return Path(cache) / sub if cache else None


def made_once(
    root: Path | None, make: Callable[[Path], None], name: Callable[[Path], str] | str
) -> tuple[Path, str | None]:
    """(the folder, a temporary folder for the caller to remove or None). `make(staging)`
    fills a staging folder; `name` is its stable name under `root`, or a function of the
    filled folder (a hash of its contents). A name known beforehand that is already there is
    used as it is. A failed `make` leaves nothing behind."""
    if root is not None and isinstance(name, str) and (root / name / MARKER).exists():
        return root / name, None
    try:  # staged beside its final place: the rename below must not cross filesystems
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        staging.chmod(0o755)  # mkdtemp makes it private; other runs read it
    except OSError:  # a read-only cache
        root, staging = None, Path(tempfile.mkdtemp(prefix="llem-folder-"))
    try:
        make(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if root is None:
        return staging, str(staging)
    stable = root / (name if isinstance(name, str) else name(staging))
    if not (stable / MARKER).exists():
        with contextlib.suppress(OSError):  # another run won the rename
            os.replace(staging, stable)  # atomic: a concurrent run sees all or nothing
    if (stable / MARKER).exists():
        shutil.rmtree(staging, ignore_errors=True)
        return stable, None
    return staging, str(staging)
