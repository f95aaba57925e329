"""The capacity search's choices, pure: given the probes so far (each a rate and whether it
met the SLO), the next rate to probe, or the verdict (docs/capacity.md).

The method: probe the lowest rate of the range first (if even that misses the SLO, the
capacity lies below the range and the search ends); then bisect in log space between the
highest rate that passed and the lowest that failed (the range's top standing in for a failure
until one is seen), until the failing rate is within `tolerance` above the passing one. If no
probe failed by then, the top of the range itself is probed: a pass there means the capacity
lies at or above the range.

Why bisection rather than interpolation on the attainment curve: serving attainment falls off
a cliff (1.0 at one rate, 0.3 a few percent above), which makes interpolation guess badly,
and bisection's probe count is known before the study starts (`CapacitySearch.probes_needed`),
so the dry run can say how many runs a search costs. Every probe lies strictly inside the
current bracket, so the probes never contradict each other (no pass above a fail), whatever
the noise; on a non-monotone curve the search finds one crossing, not necessarily the highest
(the cycles, each its own search, show such noise as a spread of capacities).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llem_harness.host_api import CapacitySearch

SearchStatus = Literal["converged", "above_range", "below_range", "budget_spent"]
STATUS_TEXT: dict[str, str] = {
    "converged": "within the tolerance",
    "above_range": "every probe met the SLO: the capacity is at least the range's top",
    "below_range": "the range's lowest rate missed the SLO: the capacity lies below the range",
    "budget_spent": "the probe budget ran out before the tolerance was reached",
}


@dataclass(frozen=True)
class Probe:
    rate: float
    passed: bool


@dataclass(frozen=True)
class Verdict:
    status: SearchStatus
    capacity: float | None  # the highest rate that met the SLO (None: below the range)
    passed: float | None  # the bracket: the highest passing rate ...
    failed: float | None  # ... and the lowest failing one (None: none failed)


def _bracket(probes: Sequence[Probe]) -> tuple[float | None, float | None]:
    passes = [p.rate for p in probes if p.passed]
    fails = [p.rate for p in probes if not p.passed]
    return (max(passes) if passes else None), (min(fails) if fails else None)


def _midpoint(low: float, high: float) -> float:
    """The geometric mean, to 4 significant digits where that stays strictly inside."""
    mid = math.sqrt(low * high)
    tidy = float(f"{mid:.4g}")
    return tidy if low < tidy < high else mid


def next_rate(spec: CapacitySearch, probes: Sequence[Probe]) -> float | None:
    """The next rate to probe, or None when the search is over (see `verdict`)."""
    low, high = spec.rate
    if not probes:
        return low
    if len(probes) >= spec.probes:
        return None
    passed, failed = _bracket(probes)
    if passed is None:  # the lowest rate failed
        return None
    upper = high if failed is None else failed
    if passed >= upper:  # the top of the range passed
        return None
    if upper / passed <= 1 + spec.tolerance:
        return high if failed is None else None  # confirm the top, or done
    return _midpoint(passed, upper)


def verdict(spec: CapacitySearch, probes: Sequence[Probe]) -> Verdict | None:
    """The search's outcome once `next_rate` says it is over; None while it is not."""
    if not probes or next_rate(spec, probes) is not None:
        return None
    passed, failed = _bracket(probes)
    if passed is None:
        return Verdict("below_range", None, None, failed)
    if failed is None and passed >= spec.rate[1]:
        return Verdict("above_range", passed, passed, None)
    if failed is not None and failed / passed <= 1 + spec.tolerance:
        return Verdict("converged", passed, passed, failed)
    return Verdict("budget_spent", passed, passed, failed)
