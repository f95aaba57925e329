"""The engine registry: every module outside an engine's own package learns engines here.

The built-in engines are listed below; a distribution of its own adds one through the
`llem_harness.engines` entry-point group, each entry naming an `EngineSpec` (`spec.py`;
docs/architecture.md, "Adding an engine"). Loading the registry imports each engine's
`__init__` (its options and rows: light), never the engine itself.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from llem_harness.backends.spec import EngineSpec, load_attr

BUILTIN: tuple[str, ...] = (
    "llem_harness.backends.pytorch:SPEC",
    "llem_harness.backends.vllm:SPEC",
    "llem_harness.backends.tensorrt:SPEC",
)
ENTRY_POINTS = "llem_harness.engines"
# Sections that hash as null when unset, as they did before engines were registered: the
# config hashes of existing results hold, and an installed engine changes no other hash.
HASHED_NULL_SECTIONS: tuple[str, ...] = ("pytorch", "vllm", "tensorrt")


class EngineRegistryError(RuntimeError):
    """An entry point that does not give a usable EngineSpec."""


def _load() -> dict[str, EngineSpec]:
    specs: dict[str, EngineSpec] = {}
    for target in BUILTIN:
        spec: EngineSpec = load_attr(target)
        specs[spec.name] = spec
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        where = f"entry point `{ep.name} = {ep.value}` of group {ENTRY_POINTS}"
        try:
            spec = ep.load()
        except Exception as exc:  # a broken plugin names itself, not a traceback
            raise EngineRegistryError(f"{where} failed to load: {exc}") from exc
        if not isinstance(spec, EngineSpec):
            raise EngineRegistryError(f"{where} gives {type(spec).__name__}, not an EngineSpec")
        if spec.name in specs:
            raise EngineRegistryError(f"{where}: an engine named `{spec.name}` exists already")
        specs[spec.name] = spec
    return specs


ENGINES: dict[str, EngineSpec] = _load()
BACKENDS: tuple[str, ...] = tuple(ENGINES)


def engine(name: str) -> EngineSpec:
    spec = ENGINES.get(name)
    if spec is None:
        raise ValueError(f"backend `{name}` is not available (known: {', '.join(BACKENDS)})")
    return spec


def import_engine(name: str) -> None:
    """Import the engine now, so that its import time is not counted as load time. A missing
    module is left for `load` to report in its own words."""
    for module in ENGINES[name].imports if name in ENGINES else ():
        try:
            importlib.import_module(module)
        except ImportError:
            return


__all__ = ["BACKENDS", "ENGINES", "EngineSpec", "engine", "import_engine"]
