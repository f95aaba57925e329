"""The steady-state window (`measurement.window: steady_state`) and the per-request timeline.

A continuously batching engine given every prompt at once runs in three stretches: a ramp
(the first `concurrency` requests getting their first token), a saturated middle (every slot
busy, requests waiting in the queue for a slot), and a drain (the queue is empty and the
batch empties as the last requests finish). The steady window is the saturated middle:

    start = the moment the first `concurrency` requests all have their first token
            (the `concurrency`-th earliest first token)
    end   = the moment the last request gets its first token: from then on nothing waits,
            and the drain begins

Why not "while `concurrency` requests are in flight" (ML.ENERGY's rule, used here before):
with a fixed output length, a whole wave of `max_num_seqs` requests starts on one step and
finishes on one step, so the in-flight count dips below the cap at every wave boundary even
though the engine is saturated (the next wave is already waiting). That rule closed the window
at the first boundary: 0.55-0.66 s of a 20 s run on an H200. The queue-based rule is not
fooled by wave boundaries, and it needs only each request's first-token time.

Tokens are counted inside the window, each request's tokens spread evenly between its first
and last token; energy is the integral of the sampled power over the same window.

The per-request timeline of the measured pass is also written next to result.json
(`requests.parquet`, `write_requests`), so that a window can be recomputed or audited.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from llem_harness.contract import SteadyState
from llem_harness.energy.base import Sample
from llem_harness.energy.timeseries import power_integral_j

Span = tuple[float, float, int]  # first token, last token (monotonic s), tokens
REQUEST_COLUMNS = ("request", "submit_s", "first_token_s", "last_token_s", "output_tokens")


def steady_window(spans: list[Span], concurrency: int) -> tuple[float, float] | None:
    """(start, end) on the spans' clock, or None when the engine never ran saturated: when no
    request ever waited (no more requests than `concurrency`), or the window is empty."""
    if concurrency < 1 or len(spans) <= concurrency:
        return None
    firsts = sorted(first for first, _, _ in spans)
    start, end = firsts[concurrency - 1], firsts[-1]
    return (start, end) if end > start else None


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
            unavailable_reason=f"the engine never ran saturated: {len(spans)} requests for "
            f"{concurrency} slots, so none waited once {concurrency} had started "
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


def write_requests(path: Path, spans: list[Span], submitted: list[float], t0: float) -> int:
    """The measured pass's per-request timeline as Parquet, times in seconds since the
    measured window opened (`t0` on the spans' clock). Returns the row count."""
    from llem_harness import __version__
    from llem_harness.parquet import Column, write_parquet

    subs = submitted if len(submitted) == len(spans) else [math.nan] * len(spans)
    columns = [
        Column("request", "int32", list(range(len(spans)))),
        Column("submit_s", "double", [s - t0 for s in subs]),
        Column("first_token_s", "double", [f - t0 for f, _, _ in spans]),
        Column("last_token_s", "double", [last - t0 for _, last, _ in spans]),
        Column("output_tokens", "int32", [n for _, _, n in spans]),
    ]
    return write_parquet(path, columns, created_by=f"llem-harness {__version__}")


def read_requests(path: Path) -> list[Span]:
    """Spans from a `requests.parquet` (as written above) or a JSON list of
    [first_s, last_s, n_tokens] triples: recorded timelines for tests and audits."""
    if path.suffix == ".json":
        return [(float(f), float(last), int(n)) for f, last, n in json.loads(path.read_text())]
    import pyarrow.parquet as pq

    cols = pq.read_table(path, columns=list(REQUEST_COLUMNS[2:])).to_pydict()
    return [
        (float(f), float(last), int(n))
        for f, last, n in zip(
            cols["first_token_s"], cols["last_token_s"], cols["output_tokens"], strict=True
        )
    ]
