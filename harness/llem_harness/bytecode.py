"""A persistent bytecode cache, for engines installed without their `.pyc` files.

Python compiles a module's source on every import when no bytecode sits beside it and it
cannot write one (a read-only or root-owned site-packages, run as another user, or
`PYTHONDONTWRITEBYTECODE`). torch, transformers and vLLM import hundreds of modules, many of
them lazily during the first `torch.compile`: on the lent H200, whose engine environment has
no bytecode, every run compiled ~580 modules during its first warmup pass alone (2.3 s) and
spent 9.5 s importing transformers' modelling code. The images ship bytecode (pip compiles
at install; images/install-harness.py warms the rest), so this matters for the local runner
and for hand-built environments.

When a probe module of the engine has no bytecode beside its source, the harness points
`sys.pycache_prefix` (and `PYTHONPYCACHEPREFIX`, for the compilers' worker processes) into
the engine cache, under a key of the interpreter and the installed engine versions: two
environments never share a bytecode file, and Python itself still checks each file against
its source's size and time. A prefix the user set wins.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from llem_harness.backends import ENGINES
from llem_harness.contract_env import BytecodeCache

PREFIX_ENV = "PYTHONPYCACHEPREFIX"
# Modules that a run imports late (on the first compile or load); a missing .pyc among them
# means the environment was installed without bytecode.
# Every engine's (its EngineSpec's `bytecode_files`); the key names every engine's packages.
PROBES = tuple(f for spec in ENGINES.values() for f in spec.bytecode_files)
KEYED_DISTRIBUTIONS = (*(p for spec in ENGINES.values() for p in spec.packages), "llem-harness")


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)  # a top-level package: found, not imported
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_bytecode(probes: tuple[str, ...] = PROBES) -> list[str]:
    """The probe sources that exist but have no bytecode where this Python looks for it."""
    missing = []
    for rel in probes:
        top, _, rest = rel.partition("/")
        folder = _package_dir(top)
        source = folder / rest if folder is not None else None
        if source is None or not source.is_file():
            continue
        if not Path(importlib.util.cache_from_source(str(source))).is_file():
            missing.append(rel)
    return missing


def environment_key() -> str:
    """The interpreter and the engine versions, hashed: the cache's folder name."""
    parts = [sys.prefix, sys.version]
    for dist in KEYED_DISTRIBUTIONS:
        try:
            parts.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"py{sys.version_info.major}{sys.version_info.minor}-{digest}"


def configure_bytecode_cache(
    root: str | None, env: dict[str, str] | None = None, probes: tuple[str, ...] = PROBES
) -> BytecodeCache:
    """Point bytecode into `root`/bytecode/<key> when the engine ships none; return the
    record for `environment.compile_caches.bytecode`: `{prefix, source, missing}` or
    `{prefix: None, reason}`."""
    target = os.environ if env is None else env
    if target.get(PREFIX_ENV):
        return BytecodeCache(prefix=target[PREFIX_ENV], source="user")
    missing = missing_bytecode(probes)
    if not missing:
        return BytecodeCache(reason="the engine's bytecode is installed beside its sources")
    if root is None:
        return BytecodeCache(reason="no engine cache to hold it", missing=missing)
    path = Path(root) / "bytecode" / environment_key()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return BytecodeCache(reason=f"cannot create {path}: {exc}", missing=missing)
    target[PREFIX_ENV] = str(path)
    target.pop("PYTHONDONTWRITEBYTECODE", None)  # writing goes to the cache, not the sources
    if env is None:  # this process: imports read the prefix and the flag at each import
        sys.pycache_prefix = str(path)
        sys.dont_write_bytecode = False
    return BytecodeCache(prefix=str(path), source="harness", missing=missing)
