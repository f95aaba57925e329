"""When the serving scenario's requests are due: the first at 0.0, each later one a gap after
the one before (as vLLM's `bench serve`): constant (1/r), exponential (Poisson) or gamma
(shape = burstiness, mean 1/r). A rate of None is infinite: every request due at 0.0. The
load generator (loadgen.py) gets each request with its due time."""

from __future__ import annotations

import math
import random

ARRIVALS = ("constant", "poisson", "gamma")


def arrival_offsets(
    n: int | None,
    rate: float | None,
    arrival: str,
    burstiness: float = 1.0,
    seed: int = 0,
    duration_s: float | None = None,
) -> list[float]:
    """Due times in seconds from the load's start, non-decreasing, the first one 0.0.

    Exactly one of `n` (a request count) and `duration_s` (offsets < duration_s) bounds the list.
    `rate` None is infinite (every offset 0.0; it needs `n`). The same seed gives the same list."""
    if arrival not in ARRIVALS:
        raise ValueError(f"unknown arrival {arrival!r}; allowed: {', '.join(ARRIVALS)}")
    if (n is None) == (duration_s is None) or not ((n or 0) >= 0 and (duration_s or 0) >= 0):
        raise ValueError(f"give exactly one of n >= 0 and duration_s >= 0, got {n}, {duration_s}")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive finite number or None, got {rate}")
    if arrival == "gamma" and not (burstiness > 0 and math.isfinite(burstiness)):
        raise ValueError(f"burstiness must be positive, got {burstiness}")
    if rate is None:  # infinite: every request due at once, which needs a count
        if n is None:
            raise ValueError("an infinite rate (rate None) needs a request count n, not duration_s")
        return [0.0] * n
    rng, t, offsets = random.Random(seed), 0.0, list[float]()
    while n is None or len(offsets) < n:
        if arrival == "constant":
            t = len(offsets) / rate  # not a running sum: no drift past the duration bound
        if duration_s is not None and t >= duration_s:
            break
        offsets.append(t)
        if arrival == "poisson":
            t += rng.expovariate(rate)
        elif arrival == "gamma":
            t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
    return offsets
