"""The equivalence test of `llem-docker compare` (review/equivalence.py) on samples whose
answer is known, checked against scipy's t distribution."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy.stats import t as student_t
from scipy.stats import ttest_ind

from llem_docker.review.equivalence import (
    TOO_FEW,
    compare_samples,
    cycles_to_decide,
    margin_text,
)

A = [0.1474, 0.1470, 0.1478]


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """d, se and Welch–Satterthwaite df of ln b − ln a, written out."""
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    wa, wb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    df = (wa + wb) ** 2 / (wa**2 / (len(la) - 1) + wb**2 / (len(lb) - 1))
    return statistics.fmean(lb) - statistics.fmean(la), math.sqrt(wa + wb), df


def test_identical_samples_are_equivalent() -> None:
    same = compare_samples(A, list(A), metric="energy_per_output_token_j")
    assert same.verdict == "equivalent" and same.method == "log"
    assert same.rel_diff == pytest.approx(0.0, abs=1e-12)
    assert same.p_difference == pytest.approx(1.0) and same.p_equivalence is not None
    assert same.p_equivalence < 0.05 and same.cycles_needed is None
    assert same.mean_a == same.mean_b == pytest.approx(statistics.fmean(A))
    low, mean, high = same.low_a, same.mean_a, same.high_a
    assert low is not None and mean is not None and high is not None and low < mean < high

    flat = compare_samples([2.0] * 3, [2.0] * 4)  # no spread at all
    assert flat.verdict == "equivalent" and "no spread" in flat.reason
    assert (flat.rel_low, flat.rel_diff, flat.rel_high) == (0.0, 0.0, 0.0)


def test_zero_spread_outside_the_margin_is_different() -> None:
    c = compare_samples([1.0, 1.0], [1.2, 1.2])
    assert c.verdict == "different" and "no spread" in c.reason and "+20.00%" in c.reason
    assert c.rel_diff == pytest.approx(0.2)


def test_a_mean_shifted_by_20_percent_is_different() -> None:
    a = [1.00, 1.01, 0.99, 1.005]
    c = compare_samples(a, [x * 1.2 for x in a], metric="m")
    assert c.verdict == "different" and c.metric == "m"
    assert c.rel_diff == pytest.approx(0.20)  # the ratio of geometric means, exactly 1.2
    assert c.rel_low is not None and c.rel_high is not None
    assert 0 < c.rel_low < 0.2 < c.rel_high < 0.25
    assert c.p_difference is not None and c.p_difference < 1e-6
    assert c.p_equivalence == pytest.approx(1.0, abs=1e-3)
    assert c.reason.startswith("differs by +20.0% [") and c.cycles_needed is None


def test_two_noisy_cycles_are_inconclusive_with_the_cycles_that_would_decide() -> None:
    a, b = [1.0, 1.2], [1.15, 1.05]  # B/A − 1 ≈ +0.3%, inside the margin
    c = compare_samples(a, b)
    assert c.verdict == "inconclusive" and c.cycles_needed is not None
    assert f"about {c.cycles_needed} cycles per side" in c.reason
    # by hand: the pooled sd of ln x, and the first n > 2 whose 90% interval fits the bounds
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    sd = math.sqrt((statistics.variance(la) + statistics.variance(lb)) / 2)
    d = statistics.fmean(lb) - statistics.fmean(la)
    lo, hi = math.log(0.95), math.log(1.05)

    def passes(n: int) -> bool:
        half = student_t.ppf(0.95, 2 * n - 2) * sd * math.sqrt(2 / n)
        return bool(lo < d - half and d + half < hi)

    assert passes(c.cycles_needed) and not passes(c.cycles_needed - 1)
    assert not any(passes(n) for n in range(3, c.cycles_needed))


def test_cycles_outside_the_margin_and_on_it() -> None:
    lo, hi = math.log(0.95), math.log(1.05)
    n = cycles_to_decide(0.2, 0.3, lo, hi, start=3)
    assert n is not None
    rejects = [student_t.ppf(0.975, 2 * k - 2) * 0.3 * math.sqrt(2 / k) < 0.2 for k in (n - 1, n)]
    assert rejects == [False, True]
    assert cycles_to_decide(hi, 0.3, lo, hi, start=3) is None  # on the margin: never
    assert cycles_to_decide(0.0, 0.0, lo, hi, start=3) is None  # no spread
    assert cycles_to_decide(0.049, 5.0, lo, hi, start=3) is None  # not within 200 cycles
    a, b = [1.0, 1.2], [1.1, 0.9]  # B/A − 1 ≈ −9%, outside the margin, too few to tell
    noisy = compare_samples(a, b)
    assert noisy.verdict == "inconclusive" and noisy.cycles_needed is not None
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    sd = math.sqrt((statistics.variance(la) + statistics.variance(lb)) / 2)
    d = statistics.fmean(lb) - statistics.fmean(la)
    k = noisy.cycles_needed
    rejects = [abs(d) > student_t.ppf(0.975, 2 * j - 2) * sd * math.sqrt(2 / j) for j in (k - 1, k)]
    assert rejects == [False, True]


def test_fewer_than_two_cycles_is_inconclusive() -> None:
    c = compare_samples([1.0], [1.0, 1.1])
    assert c.verdict == "inconclusive" and c.reason == TOO_FEW
    assert (c.rel_low, c.rel_high, c.p_equivalence, c.p_difference) == (None,) * 4
    assert c.cycles_needed is None and c.rel_diff == pytest.approx(0.05)
    none = compare_samples([], [None, float("nan"), 2.0])  # not measured: left out
    assert (none.n_a, none.n_b, none.mean_a, none.rel_diff) == (0, 1, None, None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (A, [0.1424, 0.1430, 0.1420]),
        ([10.0, 10.4, 9.8, 10.1], [10.2, 9.9, 10.3]),
        ([5.0, 5.5, 4.6], [5.3, 5.9, 6.4, 5.1, 5.6]),
        ([1.0, 1.2], [1.1, 0.9]),
    ],
)
def test_intervals_and_tost_agree_with_scipy(a: list[float], b: list[float]) -> None:
    c = compare_samples(a, b, margin=0.05)
    d, se, df = _welch(a, b)
    t90, t95 = student_t.ppf(0.95, df), student_t.ppf(0.975, df)
    assert c.rel_diff == pytest.approx(math.expm1(d))
    assert c.rel_low == pytest.approx(math.expm1(d - t95 * se))
    assert c.rel_high == pytest.approx(math.expm1(d + t95 * se))
    assert c.rel_low90 == pytest.approx(math.expm1(d - t90 * se))
    assert c.rel_high90 == pytest.approx(math.expm1(d + t90 * se))
    logs = ([math.log(x) for x in b], [math.log(x) for x in a])
    assert c.p_difference == pytest.approx(ttest_ind(*logs, equal_var=False).pvalue)
    lo, hi = math.log(0.95), math.log(1.05)
    p_tost = max(student_t.sf((d - lo) / se, df), student_t.cdf((d - hi) / se, df))
    assert c.p_equivalence == pytest.approx(p_tost)
    inside = lo < d - t90 * se and d + t90 * se < hi  # the 90% interval inside the bounds
    assert (c.verdict == "equivalent") == inside == (p_tost < 0.05)
    if not inside:
        excludes_zero = d - t95 * se > 0 or d + t95 * se < 0
        assert (c.verdict == "different") == excludes_zero


def test_worked_example_of_the_docs() -> None:
    c = compare_samples(A, [0.1424, 0.1430, 0.1420], metric="energy_per_output_token_j")
    assert c.verdict == "equivalent"  # 3.3% lower, and shown to be within 5%
    assert c.rel_diff == pytest.approx(-0.0335, abs=5e-4)
    assert c.p_difference is not None and c.p_difference < 0.05
    assert "detectable but smaller than the margin" in c.reason
    tighter = compare_samples(A, [0.1424, 0.1430, 0.1420], margin=0.03)
    assert tighter.verdict == "different" and margin_text(0.025) == "±2.5%"


def test_linear_fallback_for_a_zero_value() -> None:
    a, b = [0.0, 1.0, 2.0], [0.0, 1.0, 2.1]
    c = compare_samples(a, b, metric="requests_failed")
    assert c.method == "linear" and "linear scale" in c.reason
    assert c.rel_diff == pytest.approx(statistics.fmean(b) / statistics.fmean(a) - 1)
    assert c.p_difference == pytest.approx(ttest_ind(b, a, equal_var=False).pvalue)
    assert c.verdict == "inconclusive" and c.rel_low is not None and c.rel_low < 0
    zero = compare_samples([0.0, 0.0], [0.0, 1.0])
    assert zero.verdict == "inconclusive" and "A's mean is 0" in zero.reason
    with pytest.raises(ValueError, match="margin"):
        compare_samples(a, b, margin=1.5)


def test_different_when_the_90_percent_interval_lies_beyond_the_margin() -> None:
    # df = 1, se = 0.01 on ln x, d = 0.12: the 95% interval reaches below 0 (t = 12.7), the
    # 90% one (t = 6.31) lies wholly above ln(1.05)
    a, b = [1.0, math.exp(0.02)], [math.exp(0.13)] * 2
    c = compare_samples(a, b)
    assert c.p_difference is not None and c.p_difference > 0.05
    assert c.rel_low is not None and c.rel_low < 0
    assert c.rel_low90 is not None and c.rel_low90 > 0.05
    assert c.verdict == "different" and "lies beyond ±5%" in c.reason
