"""Summary statistics of per-request and per-pass figures: the result's `{mean, p50, p90, p99,
n}` blocks and the warmup's coefficient of variation."""

from __future__ import annotations

import statistics

from llem_harness.contract import Stats


def stats(values: list[float]) -> Stats | None:
    if not values:
        return None
    data = sorted(values)

    def pct(q: float) -> float:
        pos = (len(data) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    return Stats(
        mean=statistics.fmean(data), p50=pct(0.5), p90=pct(0.9), p99=pct(0.99), n=len(data)
    )


def cv(values: list[float]) -> float | None:
    if len(values) < 2 or statistics.fmean(values) == 0:
        return None
    return statistics.stdev(values) / statistics.fmean(values)
