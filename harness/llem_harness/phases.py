"""Prefill and decode apart: a prefill-only pass, measured like the full pass, and the rest.

Prefill is compute-bound and decode memory- and host-bound, so their energy per token
differs by an order of magnitude. After the full measured pass the harness runs the same
prompts, in the same batches, once more with one output token each: that pass is the
prefill (and the first token). Decode = full pass − prefill pass, in time and in energy.

Assumptions, and the error they bring (docs/exchange-contract.md, "Phases"): the prefill of
the full pass costs what the prefill-only pass costs (true for static batches; with
continuous batching, prefills of late requests overlap earlier requests' decode in the full
pass, so its prefill is cheaper there and decode gets the difference); the device is as warm
for both passes (they run back to back after warmup); and each pass's GPU energy is the
meter's window, as for the full pass. Noise in both passes adds up in decode's share.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llem_harness.backends import engine
from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract import PhaseFigures, Phases
from llem_harness.energy.measurement import Meters


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection inside a timed pass: its pauses land at random steps of
    the Python-heavy decode loop and add run-to-run noise. Collected before and after."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


# The one-token pass is short (tens of ms for small prompts), and an energy counter moves in
# steps (NVML's on an H200: ~0.1 s): a 76 ms pass once read 0 J. So the pass repeats, inside
# one window, until the window lasts PREFILL_MIN_S, and its figures are the window's ÷ passes.
PREFILL_MIN_S = 2.0
PREFILL_MAX_PASSES = 64


@dataclass(frozen=True)
class PrefillPass:
    """One prefill-only pass's figures: the window's totals divided by `passes`."""

    seconds: float
    energy_j: float | None
    unavailable_reason: str | None
    tokens: int  # input tokens of one pass
    passes: int


def prefill_pass(
    backend: Backend,
    meters: Meters,
    prompts: list[list[int]],
    min_s: float = PREFILL_MIN_S,
    max_passes: int = PREFILL_MAX_PASSES,
) -> PrefillPass:
    """Run the one-token pass over `prompts` until its window lasts `min_s` (at most
    `max_passes` times) and return one pass's share of the window (GPU energy only)."""
    with quiet_gc():
        backend.synchronize()
        with meters.window(co2=False, cpu=False) as w:
            t0 = time.perf_counter()
            passes = 0
            while True:
                res = backend.generate(prompts, timed=False, output_tokens=1)
                backend.synchronize()
                passes += 1
                if passes >= max_passes or time.perf_counter() - t0 >= min_s:
                    break
    seconds, reading = w.result().seconds, w.result().gpu
    joules, why = reading.total_j, reading.unavailable_reason
    if joules is not None and joules <= 0:
        joules, why = (
            None,
            (
                f"the energy counter did not advance over the prefill passes' {seconds:.3f} s "
                "(shorter than its update period)"
            ),
        )
    return PrefillPass(
        seconds=seconds / passes,
        energy_j=None if joules is None else joules / passes,
        unavailable_reason=why,
        tokens=res.input_tokens,
        passes=passes,
    )


def kv_reuse(cfg: ExperimentConfig) -> str | None:
    """Why the engine may serve the repeated prompts of a run from its KV cache, or None
    (the engine's own rule: its EngineSpec's `kv_reuse`)."""
    return engine(cfg.backend).kv_reuse(cfg)


def _per_token(joules: float | None, tokens: int) -> float | None:
    return None if joules is None or tokens <= 0 else joules / tokens


def phases_block(
    full_s: float,
    full_j: float | None,
    full_output_tokens: int,
    n_prompts: int,
    prefill_s: float,
    prefill_j: float | None,
    prefill_tokens: int,
    why_no_energy: str | None,
    why_no_prefill_energy: str | None = None,
    reuse: str | None = None,
    prefill_passes: int = 1,
) -> Phases:
    """The result's `phases` block from the two passes. `reuse` is why the engine may serve
    repeated prompts from its cache (then nothing is split: the prefill pass would not
    compute what the full pass did)."""
    if reuse is not None:
        return Phases(
            prefill=PhaseFigures(unavailable_reason=reuse),
            decode=PhaseFigures(unavailable_reason=reuse),
        )
    pre_why = why_no_prefill_energy or why_no_energy or "the prefill pass measured no energy"
    prefill = PhaseFigures(
        duration_s=prefill_s,
        tokens=prefill_tokens,
        passes=prefill_passes,
        energy_j=prefill_j,
        energy_per_token_j=_per_token(prefill_j, prefill_tokens),
        unavailable_reason=None if prefill_j is not None else pre_why,
    )
    tokens = full_output_tokens - n_prompts
    decode_s = full_s - prefill_s
    if decode_s <= 0 or tokens <= 0:
        why = (
            "one output token per prompt: there is no decode"
            if tokens <= 0
            else f"the prefill pass ({prefill_s:.3f} s) took as long as the full pass "
            f"({full_s:.3f} s): decode cannot be separated"
        )
        return Phases(
            prefill=prefill, decode=PhaseFigures(tokens=max(tokens, 0), unavailable_reason=why)
        )
    decode_j = None if full_j is None or prefill_j is None else full_j - prefill_j
    reason = (why_no_energy if full_j is None else pre_why) if decode_j is None else None
    if decode_j is not None and decode_j <= 0:
        decode_j, reason = None, "the prefill pass used as much energy as the full pass"
    decode = PhaseFigures(
        duration_s=decode_s,
        tokens=tokens,
        energy_j=decode_j,
        energy_per_token_j=_per_token(decode_j, tokens),
        unavailable_reason=reason,
    )
    return Phases(prefill=prefill, decode=decode)
