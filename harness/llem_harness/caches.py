"""Persistent compile caches for runs that are fresh processes (containers, local runs).

Every run is a new process, so without a persistent cache each run pays TorchInductor's and
Triton's compilation and vLLM's `torch.compile` of the model again (tens of seconds on a GPU).
The runners mount a persistent engine cache and set `LLEM_ENGINE_CACHE` (docker, apptainer,
local alike); the harness points the compilers' caches into it. The isolation of a fresh
process per run is kept: only compiled artefacts, keyed by the compilers' own hashes of the
code, the configuration and the toolchain, are shared.

This must run before any engine is imported: they read these variables once.
A variable the user already set wins, and the record says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from llem_harness.backends import ENGINES
from llem_harness.bytecode import configure_bytecode_cache
from llem_harness.cache_folders import ENGINE_CACHE_ENV
from llem_harness.contract_env import CacheVar, CompileCaches

# variable -> sub-folder of the engine cache: every engine's (its EngineSpec's `cache_vars`)
CACHE_DIRS: dict[str, str] = {k: v for s in ENGINES.values() for k, v in s.cache_vars.items()}
CACHE_FLAGS: dict[str, str] = {
    "TORCHINDUCTOR_FX_GRAPH_CACHE": "1",  # on by default in recent torch; explicit here
    "TORCHINDUCTOR_AUTOGRAD_CACHE": "1",  # AOTAutograd's cache: inference graphs too
}


def configure_compile_caches(env: dict[str, str] | None = None) -> CompileCaches:
    """Set the cache variables in `env` (os.environ by default) under $LLEM_ENGINE_CACHE and
    return what was used, for the result's environment: `{root, vars: {NAME: {value,
    source}}, bytecode}` with source `harness` or `user`, or `{root: None, reason, bytecode}`
    without a cache; `bytecode` is bytecode.configure_bytecode_cache()'s record."""
    target = os.environ if env is None else env
    root = target.get(ENGINE_CACHE_ENV) or None
    used: dict[str, CacheVar] = {}
    for name in (*CACHE_DIRS, *CACHE_FLAGS):
        if target.get(name):
            used[name] = CacheVar(value=target[name], source="user")
    if root is None:
        return CompileCaches(
            vars=used,
            reason=f"${ENGINE_CACHE_ENV} is not set (the runners set it to the mounted "
            "engine cache): compile caches are the libraries' defaults, lost with the "
            "container",
            bytecode=configure_bytecode_cache(None, env),
        )
    for name, sub in CACHE_DIRS.items():
        if name in used:
            continue
        path = Path(root) / sub
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue  # a read-only cache: leave the library default in place
        target[name] = str(path)
        used[name] = CacheVar(value=str(path), source="harness")
    for name, value in CACHE_FLAGS.items():
        if name not in used:
            target[name] = value
            used[name] = CacheVar(value=value, source="harness")
    return CompileCaches(root=root, vars=used, bytecode=configure_bytecode_cache(root, env))
