"""The steady-state window (`measurement.window: steady_state`), after ML.ENERGY's rule.

A continuously batching engine starts with a ramp (requests getting their first token) and
ends with a drain (the last requests finishing with a half-empty batch). The steady window
runs from the moment `concurrency` requests are in flight (each has its first token and is
not finished) until the in-flight count first drops below it. Tokens are counted inside that
window, each request's tokens spread evenly between its first and last token; energy is the
integral of the sampled power over the same window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from llem_harness.contract import SteadyState
from llem_harness.energy.base import Sample
from llem_harness.energy.timeseries import power_integral_j

Span = tuple[float, float, int]  # first token, last token (monotonic s), tokens


def steady_window(spans: list[Span], concurrency: int) -> tuple[float, float] | None:
    """(start, end) on the spans' clock, or None when `concurrency` is never reached."""
    events = sorted([(f, 1) for f, _, _ in spans] + [(last, -1) for _, last, _ in spans])
    in_flight, start = 0, None
    for t, step in events:
        in_flight += step
        if start is None and in_flight >= concurrency:
            start = t
        elif start is not None and in_flight < concurrency:
            return (start, t) if t > start else None
    return None


def tokens_within(spans: Iterable[Span], t0: float, t1: float) -> int:
    """Tokens emitted in [t0, t1], each request's n tokens at first + k*(last-first)/(n-1)."""
    total = 0
    for first, last, n in spans:
        if n <= 0:
            continue
        if n == 1 or last <= first:
            total += n if t0 <= first <= t1 else 0
            continue
        step = (last - first) / (n - 1)
        lo = max(0, math.ceil((t0 - first) / step - 1e-9))
        hi = min(n - 1, math.floor((t1 - first) / step + 1e-9))
        total += max(0, hi - lo + 1)
    return total


def measure_steady(
    spans: list[Span],
    concurrency: int,
    samples: list[Sample],
    origin: float | None,
) -> SteadyState:
    """The steady-state figures, or the reason there are none. `origin` maps the spans'
    monotonic clock onto the samples' `t_s` (seconds since the meter started)."""
    if not spans:
        return SteadyState(
            concurrency=concurrency,
            unavailable_reason="this backend reports no per-request token times",
        )
    window = steady_window(spans, concurrency)
    if window is None:
        return SteadyState(
            concurrency=concurrency,
            unavailable_reason=f"never {concurrency} requests in flight at once "
            "(more prompts than max_num_seqs are needed for a steady state)",
        )
    t0, t1 = window
    tokens = tokens_within(spans, t0, t1)
    duration = t1 - t0
    energy, reason = None, None
    if origin is None or not samples:
        reason = "no power timeseries to integrate over the window"
    else:
        energy = power_integral_j(samples, t0 - origin, t1 - origin)
        reason = None if energy is not None else "too few power samples inside the window"
    return SteadyState(
        concurrency=concurrency,
        start_s=t0,
        duration_s=duration,
        output_tokens=tokens,
        throughput_tokens_per_s=tokens / duration if duration > 0 else None,
        energy_j=energy,
        energy_per_output_token_j=energy / tokens if energy is not None and tokens else None,
        unavailable_reason=reason,
    )
