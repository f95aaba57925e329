"""The engine's load during the measured window (result.json `engine_metrics`, schema 1.10;
engine_metrics.parquet), from the per-request times the harness takes anyway.

Why not the engine's own statistics: vLLM fills its scheduler statistics (running, waiting,
KV-cache use, preemptions) only with `log_stats`, which one H200 measurement found to cost up
to 15% of throughput (backends/vllm/backend.py), and it cannot be switched on for one pass.
So the measured pass runs as users run it, and the load is rebuilt afterwards from what every
request's own times say. The summary in result.json is exact (time averages over the window
and the maxima, from the requests' events: `exact_load`); engine_metrics.parquet samples the
same quantities at instants on the power samples' grid (finer where the window holds fewer
than 100 of them), for plotting:

- running(t): requests whose first token is out and whose last is not (decoding);
- waiting(t): requests handed to the engine whose first token is not out (queued, or in
  prefill);
- KV cache (t): the tokens those running requests hold, their prompt plus the output so far
  (counted as produced evenly between their first and last token), over the cache's capacity
  in tokens (vLLM reports it: the offline engine's config, the server's log). Block rounding,
  prefix sharing and a prefill's own cache are not counted, so this is an estimate, a little
  low.

Nothing of it runs inside the window, so it costs no energy. What the times cannot show is a
preemption (a preempted request keeps its first token and waits for its last): preemptions
stay null, with that reason. The offline vLLM backend and the serving load generator give the
times; a static-batch engine (pytorch) has its batch as configured instead (`static_batch`).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llem_harness.contract_engine import ENGINE_METRICS_FILE, EngineMetrics

PREEMPTIONS_WHY = (
    "the engine counts preemptions only in its request statistics (log_stats), which are "
    "off in measured runs because they cost throughput; request times cannot show one"
)
Pair = tuple[float, float]
MIN_POINTS = 100  # a window shorter than 100 sample intervals gets a finer grid
SPANS_SOURCE = "rebuilt from per-request times: submitted, first and last token"
# vLLM's start-up log line: "GPU KV cache size: 1,234,560 tokens" ("CPU ..." on a CPU build)
_KV_LINE = re.compile(r"[A-Z]PU KV cache size:\s*([\d,]+)\s*tokens")


@dataclass(frozen=True)
class RequestTimes:
    """One request on the harness's time.monotonic() clock, with its token counts."""

    submitted: float
    first: float
    last: float
    prompt: int
    tokens: int


@dataclass
class Timeline:
    t: list[float]  # grid points, on the requests' clock
    running: list[int]
    waiting: list[int]
    kv_tokens: list[float]


@dataclass(frozen=True)
class Load:
    """Exact figures over a window: time averages (integrals over its length) and maxima."""

    mean_running: float
    max_running: int
    mean_waiting: float
    max_waiting: int
    mean_kv_tokens: float
    max_kv_tokens: float


def timeline(reqs: Sequence[RequestTimes], t0: float, t1: float, step: float) -> Timeline:
    """running / waiting / KV tokens at the instants t0, t0 + step, ... up to t1 (module
    docstring): what engine_metrics.parquet holds, for plotting."""
    n = max(1, math.floor((t1 - t0) / step) + 1)
    grid = [t0 + i * step for i in range(n)]
    subs = sorted(r.submitted for r in reqs)
    firsts = sorted(r.first for r in reqs)
    lasts = sorted(r.last for r in reqs)
    running = [bisect.bisect_right(firsts, t) - bisect.bisect_right(lasts, t) for t in grid]
    waiting = [bisect.bisect_right(subs, t) - bisect.bisect_right(firsts, t) for t in grid]
    kv = [0.0] * n
    for r in reqs:
        lo = max(0, math.ceil((r.first - t0) / step))
        hi = min(n, math.ceil((r.last - t0) / step))  # cells with first <= t < last
        for i in range(lo, hi):
            kv[i] += _held(r, grid[i])
    return Timeline(grid, running, waiting, kv)


def _rate(r: RequestTimes) -> float:
    return r.tokens / (r.last - r.first) if r.last > r.first else 0.0


def _held(r: RequestTimes, t: float) -> float:
    """The tokens request `r` holds in the cache at t (first <= t < last)."""
    return r.prompt + _rate(r) * (t - r.first)


def exact_load(reqs: Sequence[RequestTimes], t0: float, t1: float) -> Load:
    """The window's load without a grid, so that requests shorter than a grid step count:
    means are each interval's overlap with the window over its length; maxima come from a
    sweep over the requests' events (between two events the KV tokens only grow, so their
    maximum is reached just before an event or at t1)."""
    span = t1 - t0
    run_s = wait_s = kv_s = 0.0
    for r in reqs:
        a, b = max(r.first, t0), min(r.last, t1)
        if b > a:
            run_s += b - a
            rate = _rate(r)
            kv_s += r.prompt * (b - a) + rate / 2 * ((b - r.first) ** 2 - (a - r.first) ** 2)
        wait_s += max(0.0, min(r.first, t1) - max(r.submitted, t0))
    return Load(
        run_s / span if span > 0 else 0.0,
        _most(reqs, t0, t1, lambda r: (r.first, r.last)),
        wait_s / span if span > 0 else 0.0,
        _most(reqs, t0, t1, lambda r: (r.submitted, r.first)),
        kv_s / span if span > 0 else 0.0,
        _most_kv(reqs, t0, t1),
    )


def _most(
    reqs: Sequence[RequestTimes], t0: float, t1: float, edges: Callable[[RequestTimes], Pair]
) -> int:
    """The most intervals [start, end) open at once within [t0, t1]."""
    spans = [(s, e) for s, e in map(edges, reqs) if e > s]
    now = most = sum(1 for s, e in spans if s <= t0 < e)
    # at one instant an end (-1) sorts before a start (+1): touching intervals never overlap
    for _, step in sorted((t, d) for s, e in spans for t, d in ((s, 1), (e, -1)) if t0 < t <= t1):
        now += step
        most = max(most, now)
    return most


def _most_kv(reqs: Sequence[RequestTimes], t0: float, t1: float) -> float:
    """The most KV tokens held at once within [t0, t1]. Over the running requests,
    KV(t) = P + t·R − F (P their prompts, R their rates, F their rates × first-token times):
    linear and rising between events, so the maximum is just before an event, or at t1."""
    total = [0.0, 0.0, 0.0]  # P, R, F

    def apply(r: RequestTimes, sign: int) -> None:
        rate = _rate(r)
        total[0] += sign * r.prompt
        total[1] += sign * rate
        total[2] += sign * rate * r.first

    def kv(t: float) -> float:
        return total[0] + t * total[1] - total[2]

    for r in reqs:
        if r.first <= t0 < r.last:
            apply(r, 1)
    most = kv(t0)
    events = sorted(
        (t, sign, k)
        for k, r in enumerate(reqs)
        if r.last > r.first
        for t, sign in ((r.first, 1), (r.last, -1))
        if t0 < t <= t1
    )
    for t, sign, k in events:
        most = max(most, kv(t))  # just before it
        apply(reqs[k], sign)
    return max(most, kv(t1))


def engine_metrics(
    reqs: Sequence[RequestTimes],
    window: tuple[float, float],
    step: float,
    *,
    limit: int,
    capacity: int | None,
    origin: float | None,
    run_dir: Path,
) -> EngineMetrics:
    """The summary over `window` (on the requests' clock), on a grid of `step` seconds (or
    finer: `MIN_POINTS`), and the timeline written to engine_metrics.parquet with t_s on the
    power timeseries' clock (`origin`: its zero)."""
    why: dict[str, str] = {"preemptions": PREEMPTIONS_WHY}
    if not reqs:
        why |= {k: "no request times" for k in ("running", "waiting", "kv_cache")}
        return EngineMetrics(source=SPANS_SOURCE, concurrency_limit=limit, unavailable=why)
    step = min(step, max((window[1] - window[0]) / MIN_POINTS, 1e-4))  # short windows too
    line = timeline(reqs, window[0], window[1], step)
    usage = None if capacity is None or capacity <= 0 else [k / capacity for k in line.kv_tokens]
    if usage is None:
        why["kv_cache"] = "the engine did not report its KV cache's capacity"
    rows = _write(run_dir / ENGINE_METRICS_FILE, line, usage, origin)
    load = exact_load(reqs, window[0], window[1])
    cap = None if usage is None else float(capacity or 0)
    return EngineMetrics(
        source=SPANS_SOURCE,
        concurrency_limit=limit,
        mean_running=load.mean_running,
        max_running=load.max_running,
        mean_waiting=load.mean_waiting,
        max_waiting=load.max_waiting,
        kv_cache_usage_mean=None if cap is None else load.mean_kv_tokens / cap,
        kv_cache_usage_max=None if cap is None else load.max_kv_tokens / cap,
        kv_cache_tokens=capacity,
        unavailable=why,
        file=ENGINE_METRICS_FILE,
        rows=rows,
    )


def static_batch(n_prompts: int, batch_size: int) -> EngineMetrics:
    """A static-batch engine runs its batches as configured: ⌈n / batch⌉ batches, all full but
    perhaps the last, one after another; nothing waits inside the engine."""
    batches = max(1, math.ceil(n_prompts / batch_size))
    why = "a static batch holds its prompts' cache as allocated, not a shared paged cache"
    return EngineMetrics(
        source="the static batch as configured",
        concurrency_limit=batch_size,
        mean_running=n_prompts / batches,
        max_running=min(batch_size, n_prompts),
        mean_waiting=0.0,
        max_waiting=0,
        unavailable={"kv_cache": why, "preemptions": "a static batch preempts nothing"},
    )


def kv_capacity_from_log(text: str) -> int | None:
    """The KV cache's capacity in tokens from a vLLM log (the last such line), or None."""
    found = _KV_LINE.findall(text)
    return int(found[-1].replace(",", "")) if found else None


def _write(path: Path, line: Timeline, usage: list[float] | None, origin: float | None) -> int:
    from llem_harness import __version__
    from llem_harness.parquet import Column, write_parquet

    zero = origin if origin is not None else line.t[0]
    columns = [
        Column("t_s", "double", [t - zero for t in line.t], nullable=False),
        Column("running", "int32", line.running, nullable=False),
        Column("waiting", "int32", line.waiting, nullable=False),
        Column("kv_cache_tokens", "double", line.kv_tokens, nullable=False),
        Column("kv_cache_usage", "double", usage if usage is not None else [None] * len(line.t)),
    ]
    return write_parquet(path, columns, created_by=f"llem-harness {__version__}")
