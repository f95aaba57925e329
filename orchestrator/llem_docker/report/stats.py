"""Mean, standard deviation and a 95% confidence interval across cycles.

The interval is Student's t: mean ± t(0.975, n−1) · s / √n, with s the sample standard
deviation (n − 1 in the denominator). t comes from the standard table below. Between
tabulated degrees of freedom the next smaller one is used, which errs on the wide side.
With one value there is no spread: std and the interval are null, not 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% critical values of Student's t, by degrees of freedom.
T_975: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip
Z_975 = 1.960


def t_975(df: int) -> float:
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    return T_975[max(k for k in T_975 if k <= df)] if df <= 120 else Z_975


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci95: float | None  # half-width: the interval is mean ± ci95
    cv: float | None  # std / |mean|

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.ci95 is None else self.mean - self.ci95

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.ci95 is None else self.mean + self.ci95


def summarize(values: Sequence[float | None]) -> Summary:
    """Over the values that were measured; None values (not measured) are left out."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return Summary(0, None, None, None, None)
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return Summary(1, mean, None, None, None)
    std = statistics.stdev(xs)
    ci = t_975(len(xs) - 1) * std / math.sqrt(len(xs))
    return Summary(len(xs), mean, std, ci, std / abs(mean) if mean else None)
