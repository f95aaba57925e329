"""Mean, standard deviation and a 95% interval across cycles.

The mean and the sample standard deviation (n − 1 in the denominator) are the headline
figures. The 95% interval depends on the quantity:

- `log` (the default, for quantities that cannot be negative: energy, J/token, throughput,
  latency, power, durations): Student's t on ln x, back-transformed,
  [exp(m − t·s/√n), exp(m + t·s/√n)] with m and s the mean and sd of ln x. It is the interval
  of the geometric mean: it never reaches zero, and it is asymmetric around the arithmetic
  mean (wider above it). Where a value is 0 or negative there is no logarithm, and the
  interval falls back to the `linear` one (`Summary.method` says which was used).
- `linear` (quantities that can be 0, such as a count of failed requests or an attainment):
  mean ± t·sd/√n.

t(0.975, n − 1) is scipy's (`scipy.stats.t.ppf`). With one value there is no spread: std and
the interval are null, not 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy.stats import t as student_t

Method = Literal["log", "linear"]


def t_975(df: int) -> float:
    """The two-sided 95% critical value of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    return float(student_t.ppf(0.975, df))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci95: float | None  # the linear interval's half-width, t·sd/√n (kept for CSV and JSON)
    cv: float | None  # std / |mean|
    low: float | None = None  # the 95% interval the report shows, [low, high]
    high: float | None = None
    method: Method | None = None  # how [low, high] was computed; None without an interval

    def __post_init__(self) -> None:
        """A summary given only a half-width has the linear interval mean ± ci95."""
        if self.low is None and self.mean is not None and self.ci95 is not None:
            object.__setattr__(self, "low", self.mean - self.ci95)
            object.__setattr__(self, "high", self.mean + self.ci95)
            object.__setattr__(self, "method", self.method or "linear")


def summarize(values: Sequence[float | None], *, log: bool = True) -> Summary:
    """Over the values that were measured; None values (not measured) are left out. `log`:
    the quantity cannot be negative, so its interval is taken on the log scale."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return Summary(0, None, None, None, None)
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return Summary(1, mean, None, None, None)
    std = statistics.stdev(xs)
    t = t_975(len(xs) - 1)
    half = t * std / math.sqrt(len(xs))
    cv = std / abs(mean) if mean else None
    if log and min(xs) > 0:
        logs = [math.log(x) for x in xs]
        centre, spread = statistics.fmean(logs), t * statistics.stdev(logs) / math.sqrt(len(xs))
        low, high = math.exp(centre - spread), math.exp(centre + spread)
        return Summary(len(xs), mean, std, half, cv, low, high, "log")
    return Summary(len(xs), mean, std, half, cv, mean - half, mean + half, "linear")


def error_bars(stats: Sequence[Summary]) -> list[list[float]]:
    """matplotlib's asymmetric error bars, [[below], [above]] the mean, for the intervals
    [low, high]: 0 where there is none, and never negative (the mean of a very spread set of
    values can lie above its geometric interval)."""
    below = [0.0 if s.mean is None or s.low is None else max(0.0, s.mean - s.low) for s in stats]
    above = [0.0 if s.mean is None or s.high is None else max(0.0, s.high - s.mean) for s in stats]
    return [below, above]
