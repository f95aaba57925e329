"""Do two samples of a positive figure agree? An equivalence test at a relative margin.

Pure statistics, no I/O (docs/reproduce.md, "compare: the statistics in plain words"). The
samples are one value per cycle (J/token of each cycle, say) of study A (the original) and
study B (the rerun).

- Scale. Figures that cannot be negative are compared on the log scale: the difference of the
  means of ln x is the log of the ratio of the geometric means, so B/A − 1 = exp(d) − 1, and
  its interval never reaches −100%. Where a value is 0 or negative there is no logarithm:
  the comparison falls back to the linear scale (Welch on x; B/A − 1 from the ratio of the
  arithmetic means, the interval divided by |mean of A|), and `method` says "linear".
- Difference. Welch's t on the chosen scale (unequal variances, Welch–Satterthwaite degrees
  of freedom): the 95% interval of B/A − 1 and the two-sided p (scipy's t distribution; the
  p is `scipy.stats.ttest_ind(..., equal_var=False)`'s, without its warning where one side
  has no spread).
- Equivalence. Two one-sided tests (TOST) against the bounds ln(1 − m) and ln(1 + m) at
  α = 0.05 (linear: ∓ m·|mean of A|); `p_equivalence` is the larger of the two one-sided p.
  It passes exactly when the 90% interval lies inside the bounds.
- Verdict. "equivalent" when the TOST passes; else "different" when the Welch test rejects
  equality (its 95% interval excludes 0) or the whole 90% interval lies beyond the margin;
  else "inconclusive", with the cycles per side that would decide it (`cycles_to_decide`).
- Edge cases. Fewer than 2 values on a side: "inconclusive", no interval. No spread on either
  side: the means decide (inside the margin: "equivalent", outside: "different").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy.stats import t as student_t

from llem_docker.report.fmt import num
from llem_docker.report.stats import summarize

Verdict = Literal["equivalent", "different", "inconclusive"]
Method = Literal["log", "linear"]
ALPHA = 0.05
DEFAULT_MARGIN = 0.05
MAX_CYCLES = 200  # `cycles_to_decide` searches up to this many cycles per side
TOO_FEW = "needs ≥ 2 cycles on each side"


@dataclass(frozen=True)
class Comparison:
    """One figure of one study point, A against B. Relative figures are fractions
    (0.034 is 3.4%); the intervals are 95% unless named 90."""

    metric: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    low_a: float | None
    high_a: float | None
    low_b: float | None
    high_b: float | None
    rel_diff: float | None  # B/A − 1
    rel_low: float | None
    rel_high: float | None
    p_equivalence: float | None  # TOST: the larger one-sided p
    p_difference: float | None  # Welch, two-sided
    verdict: Verdict
    reason: str
    cycles_needed: int | None  # per side, for an inconclusive verdict
    method: Method
    margin: float
    rel_low90: float | None = None  # the 90% interval the TOST is read from
    rel_high90: float | None = None


@dataclass(frozen=True)
class _Scale:
    """The two samples on the scale they are compared on."""

    d: float  # mean of B − mean of A
    se: float  # Welch's standard error of d
    df: float  # Welch–Satterthwaite
    pooled_sd: float  # for the cycles that would decide it
    lo: float  # the margin's bounds on d
    hi: float
    unit: float  # d / unit is B/A − 1 on the linear scale
    log: bool

    def rel(self, x: float) -> float:
        return math.expm1(x) if self.log else x / self.unit


def pct(x: float | None, digits: int = 1) -> str:
    """A relative figure in %, signed: 0.0342 → `+3.4%`."""
    return "n/a" if x is None else f"{x * 100:+.{digits}f}%"


def margin_text(margin: float) -> str:
    """The margin as the tables show it: 0.05 → `±5%`, 0.025 → `±2.5%`."""
    return f"±{num(margin * 100)}%"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _scale(a: list[float], b: list[float], margin: float, log: bool) -> _Scale:
    xa, xb = ([math.log(v) for v in a], [math.log(v) for v in b]) if log else (a, b)
    va, vb = statistics.variance(xa), statistics.variance(xb)
    na, nb = len(xa), len(xb)
    d = statistics.fmean(xb) - statistics.fmean(xa)
    wa, wb = va / na, vb / nb
    se = math.sqrt(wa + wb)
    df = (wa + wb) ** 2 / (wa**2 / (na - 1) + wb**2 / (nb - 1)) if se > 0 else float(na + nb - 2)
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    unit = abs(statistics.fmean(a))
    if log:
        return _Scale(d, se, df, pooled, math.log1p(-margin), math.log1p(margin), 1.0, True)
    return _Scale(d, se, df, pooled, -margin * unit, margin * unit, unit, False)


def _tost_p(s: _Scale) -> float:
    """The larger one-sided p of H0: d ≤ lo and H0: d ≥ hi."""
    p_low = float(student_t.sf((s.d - s.lo) / s.se, s.df))
    p_high = float(student_t.cdf((s.d - s.hi) / s.se, s.df))
    return max(p_low, p_high)


def _interval(s: _Scale, level: float) -> tuple[float, float]:
    half = float(student_t.ppf(0.5 + level / 2, s.df)) * s.se
    return s.rel(s.d - half), s.rel(s.d + half)


def _on_margin(s: _Scale) -> bool:
    return any(math.isclose(s.d, bound, rel_tol=1e-9, abs_tol=1e-15) for bound in (s.lo, s.hi))


def cycles_to_decide(
    d: float,
    pooled_sd: float,
    lo: float,
    hi: float,
    *,
    start: int,
    alpha: float = ALPHA,
    limit: int = MAX_CYCLES,
) -> int | None:
    """The fewest cycles per side, from `start` to `limit`, at which a difference `d` with
    the pooled sd `pooled_sd` (both on the compared scale) would be decided, taking both as
    they were observed: inside the bounds (lo, hi), the TOST would pass (the 90% interval
    d ± t(1 − α, 2n − 2)·sd·√(2/n) inside them); outside, the difference test would reject
    (|d| > t(1 − α/2, 2n − 2)·sd·√(2/n)). None on a bound, with no spread, or past `limit`."""
    if not pooled_sd > 0 or any(math.isclose(d, b, rel_tol=1e-9) for b in (lo, hi)):
        return None
    inside = lo < d < hi
    for n in range(max(start, 2), limit + 1):
        se = pooled_sd * math.sqrt(2 / n)
        if inside:
            t = float(student_t.ppf(1 - alpha, 2 * n - 2))
            if lo < d - t * se and d + t * se < hi:
                return n
        elif abs(d) > float(student_t.ppf(1 - alpha / 2, 2 * n - 2)) * se:
            return n
    return None


def _means(a: list[float], b: list[float], log: bool) -> dict[str, float | None]:
    sa, sb = summarize(a, log=log), summarize(b, log=log)
    return {
        "mean_a": sa.mean, "low_a": sa.low, "high_a": sa.high,
        "mean_b": sb.mean, "low_b": sb.low, "high_b": sb.high,
    }  # fmt: skip


def _too_few(metric: str, a: list[float], b: list[float], margin: float) -> Comparison:
    log = min(a + b, default=1.0) > 0
    m = _means(a, b, log)
    ma, mb = m["mean_a"], m["mean_b"]
    rel = mb / ma - 1 if ma and mb is not None else None
    return Comparison(
        metric, len(a), len(b), **m, rel_diff=rel, rel_low=None, rel_high=None,
        p_equivalence=None, p_difference=None, verdict="inconclusive", reason=TOO_FEW,
        cycles_needed=None, method="log" if log else "linear", margin=margin,
    )  # fmt: skip


def _no_spread(s: _Scale, margin: float) -> tuple[Verdict, str, float, float]:
    """Both samples constant: the means decide. (verdict, reason, p_eq, p_diff)"""
    rel = s.rel(s.d)
    if s.lo < s.d < s.hi:
        why = f"no spread on either side; B/A − 1 = {pct(rel, 2)}, inside {margin_text(margin)}"
        return "equivalent", why, 0.0, 1.0 if s.d == 0 else 0.0
    why = f"no spread on either side; B/A − 1 = {pct(rel, 2)}, outside {margin_text(margin)}"
    return "different", why, 1.0, 0.0


def _judge(s: _Scale, p_eq: float, p_diff: float, alpha: float) -> Verdict:
    half90 = float(student_t.ppf(1 - alpha, s.df)) * s.se
    if p_eq < alpha:
        return "equivalent"
    if p_diff < alpha or s.d - half90 > s.hi or s.d + half90 < s.lo:
        return "different"
    return "inconclusive"


def _reason(verdict: Verdict, c: dict[str, float], margin: float, alpha: float) -> str:
    """Why: the interval the verdict was read from, in % (c: rel, low, high, low90, high90,
    p_diff)."""
    wide, narrow = f"{1 - alpha:.0%}", f"{1 - 2 * alpha:.0%}"
    shown = f"[{pct(c['low'])}, {pct(c['high'])}] ({wide})"
    shown90 = f"[{pct(c['low90'])}, {pct(c['high90'])}]"
    band = margin_text(margin)
    if verdict == "equivalent":
        head = f"{narrow} interval {shown90} inside {band}; B/A − 1 = {pct(c['rel'])} {shown}"
        detectable = c["p_diff"] < alpha
        return head + ("; the difference is detectable but smaller than the margin" * detectable)
    if verdict == "different" and c["p_diff"] < alpha:
        return f"differs by {pct(c['rel'])} {shown}, Welch p = {num(c['p_diff'], 2)}"
    if verdict == "different":
        return f"differs by {pct(c['rel'])}: the {narrow} interval {shown90} lies beyond {band}"
    return f"B/A − 1 = {pct(c['rel'])} {shown}: neither within {band} nor shown different"


def compare_samples(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    metric: str = "",
    margin: float = DEFAULT_MARGIN,
    alpha: float = ALPHA,
) -> Comparison:
    """A's and B's per-cycle values of `metric` compared at the relative `margin` (0.05 is
    ±5%). None and non-finite values (not measured) are left out."""
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1), got {margin}")
    xa, xb = _finite(a), _finite(b)
    if min(len(xa), len(xb)) < 2:
        return _too_few(metric, xa, xb, margin)
    log = min(xa + xb) > 0
    if not log and statistics.fmean(xa) == 0:
        why = "A's mean is 0: no relative difference on the linear scale"
        return replace(_too_few(metric, xa, xb, margin), reason=why)
    s = _scale(xa, xb, margin, log)
    rel = s.rel(s.d)
    if s.se == 0:
        verdict, reason, p_eq, p_diff = _no_spread(s, margin)
        low = high = low90 = high90 = rel
        needed = None
    else:
        p_diff = 2 * float(student_t.sf(abs(s.d) / s.se, s.df))  # Welch's two-sided p
        p_eq = _tost_p(s)
        (low, high), (low90, high90) = _interval(s, 1 - alpha), _interval(s, 1 - 2 * alpha)
        verdict = _judge(s, p_eq, p_diff, alpha)
        c = {"rel": rel, "low": low, "high": high, "low90": low90, "high90": high90}
        reason = _reason(verdict, c | {"p_diff": p_diff}, margin, alpha)
        needed = None
        if verdict == "inconclusive":
            start = max(len(xa), len(xb)) + 1
            needed = cycles_to_decide(s.d, s.pooled_sd, s.lo, s.hi, start=start, alpha=alpha)
            reason += f"; about {needed} cycles per side would decide it" if needed else ""
    if not log:
        reason += " (linear scale: a value ≤ 0 has no logarithm)"
    return Comparison(
        metric, len(xa), len(xb), **_means(xa, xb, log), rel_diff=rel, rel_low=low,
        rel_high=high, p_equivalence=p_eq, p_difference=p_diff, verdict=verdict,
        reason=reason, cycles_needed=needed, method="log" if log else "linear", margin=margin,
        rel_low90=low90, rel_high90=high90,
    )  # fmt: skip
