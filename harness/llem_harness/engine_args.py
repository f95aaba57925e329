"""`<backend>.engine_args`: further keywords for the engine, checked against its signatures.

The host cannot know every engine's keywords (they change with each release), so it checks
only that none is one the harness sets itself (its EngineSpec's `reserved_args`). The
harness, which has the engine imported, checks the rest at start-up, before the model loads:
each key must be a keyword of one of the engine's entry points, and goes to the first that
takes it:

- pytorch: `generate` (a `GenerationConfig` field), the model's config (an attribute of its
  `PretrainedConfig`, set before the model is built), or `from_pretrained` (its parameters;
  with `weights: pretrained` only);
- vllm: `LLM` (its parameters and `EngineArgs`' fields), then `SamplingParams`;
- tensorrt: `LLM` (its parameters and its LLM API arguments' fields).

An unknown key is an error of the `config` phase (exit code 2) that names the key and the
nearest valid ones. The keys and values are part of the config hash, and sweepable
(`vllm.engine_args.enable_chunked_prefill: [true, false]`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class EngineArgsError(ValueError):
    """An engine_args key no entry point of the engine takes."""


def parameters(*fns: Callable[..., Any]) -> set[str]:
    """The named keyword parameters of `fns` (not *args/**kwargs, not self)."""
    names: set[str] = set()
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        names |= {
            p.name
            for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
        }
    return names


def route(
    backend: str, given: dict[str, Any], targets: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, Any]]:
    """Split `given` between the targets (in order) by which accepts each key."""
    accepted = {name: set(keys) for name, keys in targets.items()}
    out: dict[str, dict[str, Any]] = {name: {} for name in accepted}
    for key, value in given.items():
        target = next((name for name, keys in accepted.items() if key in keys), None)
        if target is None:
            valid = sorted(set().union(*accepted.values()))
            near = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
            hint = f"; nearest: {', '.join(near)}" if near else ""
            raise EngineArgsError(
                f"{backend}.engine_args.{key} is not a keyword of "
                f"{' or '.join(accepted)} in this engine{hint}"
            )
        out[target][key] = value
    return out
