"""The capacity search's choices on synthetic attainment curves (capacity/search.py), and the
probe's judgement (capacity/judge.py): clean cliffs, noisy and non-monotone curves, the range's
ends and the probe budget."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from llem_docker.capacity.judge import judge
from llem_docker.capacity.search import Probe, next_rate, verdict
from llem_harness.host_api import SLO, CapacitySearch, ExperimentResult

Curve = Callable[[float], bool]


def search(spec: CapacitySearch, passes: Curve) -> tuple[list[Probe], object]:
    probes: list[Probe] = []
    while (rate := next_rate(spec, probes)) is not None:
        low, high = spec.rate
        assert low <= rate <= high
        probes.append(Probe(rate, passes(rate)))
        assert len(probes) <= spec.probes
    return probes, verdict(spec, probes)


def consistent(probes: list[Probe]) -> bool:
    """No probe passed above one that failed."""
    fails = [p.rate for p in probes if not p.passed]
    return all(p.rate < min(fails, default=math.inf) for p in probes if p.passed)


@pytest.mark.parametrize("capacity", [1.3, 7.0, 37.3, 100.0, 199.9])
def test_a_cliff_is_found_within_the_tolerance(capacity: float) -> None:
    spec = CapacitySearch(rate=(1, 256), tolerance=0.05)
    probes, found = search(spec, lambda r: r <= capacity)
    assert found is not None and found.status == "converged"  # type: ignore[attr-defined]
    passed, failed = found.passed, found.failed  # type: ignore[attr-defined]
    assert passed <= capacity < failed and failed / passed <= 1.05
    assert found.capacity == passed  # type: ignore[attr-defined]
    assert len(probes) <= spec.probes_needed() and consistent(probes)


def test_the_probe_count_is_known_before_the_search() -> None:
    spec = CapacitySearch(rate=(10, 80), tolerance=0.1)
    # the lowest rate, ceil(log2(ln 8 / ln 1.1)) = 5 halvings, and the top if nothing failed
    assert spec.probes_needed() == 7 and spec.most_probes() == 7
    assert CapacitySearch(rate=(10, 80), tolerance=0.1, probes=4).most_probes() == 4
    assert CapacitySearch(rate=(10, 10.5), tolerance=0.1).probes_needed() == 2
    everything, found = search(spec, lambda r: True)
    assert len(everything) == 7 and found.status == "above_range"  # type: ignore[attr-defined]
    assert found.capacity == 80 and found.failed is None  # type: ignore[attr-defined]


def test_a_lowest_rate_that_fails_ends_the_search_below_the_range() -> None:
    probes, found = search(CapacitySearch(rate=(5, 50)), lambda r: r < 1)
    assert [p.rate for p in probes] == [5]
    assert found.status == "below_range" and found.capacity is None  # type: ignore[attr-defined]
    assert found.failed == 5  # type: ignore[attr-defined]


def test_a_small_budget_ends_with_the_bracket_it_reached() -> None:
    spec = CapacitySearch(rate=(1, 1000), probes=3, tolerance=0.01)
    probes, found = search(spec, lambda r: r <= 20)
    assert len(probes) == 3 and found.status == "budget_spent"  # type: ignore[attr-defined]
    assert found.passed <= 20 < found.failed  # type: ignore[attr-defined]
    assert found.failed / found.passed > 1.01  # type: ignore[attr-defined]


def test_rates_are_tidy_and_strictly_inside_the_bracket() -> None:
    spec = CapacitySearch(rate=(3, 7), tolerance=0.0001, probes=50)
    probes, found = search(spec, lambda r: r <= math.pi)
    assert all(len(f"{p.rate:.4g}") <= 6 for p in probes[:4])
    rates = [p.rate for p in probes]
    assert len(set(rates)) == len(rates)  # never the same rate twice
    assert found.status == "converged"  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(200))
def test_noise_never_leads_the_search_outside_the_noise_band(seed: int) -> None:
    """Attainment falls smoothly from 1 to 0 around 40 req/s; each probe reads it with
    Gaussian noise (sd 0.02) and passes at 0.9. Where noise can flip a verdict, the search
    may end anywhere; it must never end outside that band, whatever the draws."""
    rng = random.Random(seed)

    def attainment(r: float) -> float:
        return 1 / (1 + math.exp((r - 40) / 2))

    def passes(r: float) -> bool:
        return attainment(r) + rng.gauss(0, 0.02) >= 0.9

    # a(r) = t at r = 40 + 2 ln(1/t - 1): a pass needs a >= 0.8 (at most 5 sd of noise
    # below the target), a fail a <= 0.999
    band_low = 40 + 2 * math.log(1 / 0.999 - 1)  # about 26.2 req/s
    band_high = 40 + 2 * math.log(1 / 0.8 - 1)  # about 37.2 req/s
    spec = CapacitySearch(rate=(1, 256), tolerance=0.05)
    probes, found = search(spec, passes)
    assert consistent(probes)
    assert found.status in ("converged", "budget_spent")  # type: ignore[attr-defined]
    assert found.passed <= band_high and found.failed >= band_low  # type: ignore[attr-defined]


def test_a_non_monotone_curve_gives_a_true_crossing_of_what_was_probed() -> None:
    """Passes below 10 and between 20 and 40 req/s, fails elsewhere: the search ends at a
    crossing its own probes show (a pass just below a fail), never with a contradiction."""

    def passes(r: float) -> bool:
        return r <= 10 or 20 <= r <= 40

    for low, high in [(1, 100), (1, 256), (2, 60), (5, 41)]:
        spec = CapacitySearch(rate=(low, high), tolerance=0.05)
        probes, found = search(spec, passes)
        assert consistent(probes)
        assert found.status == "converged"  # type: ignore[attr-defined]
        edge = found.passed  # type: ignore[attr-defined]
        assert passes(edge) and not passes(found.failed)  # type: ignore[attr-defined]
        assert any(c / 1.05 <= edge <= c for c in (10, 40))  # next to a falling edge


def served(joint: float, each: dict[str, float]) -> ExperimentResult:
    from llem_harness.contract import Serving, ServingWindow
    from tests.harness.test_validity import result

    res = result()
    res.serving = Serving(
        request_rate=10, arrival="constant", requests=200, completed=200, failed=0,
        duration_s=20, steady=ServingWindow(), whole=ServingWindow(),
        slo={"ttft_ms": 100.0, "tpot_ms": 20.0}, slo_attainment=joint, slo_attainment_each=each,
    )  # fmt: skip
    return res


def test_the_rule_reads_each_objective_or_the_whole_request() -> None:
    res = served(0.97, {"ttft_ms": 0.995, "tpot_ms": 0.98})
    slo = SLO(ttft_ms=100, tpot_ms=20)
    each = judge(CapacitySearch(rate=(1, 2), attainment=0.99), slo, res)
    assert each.passed is False and each.attainment == {"ttft_ms": 0.995, "tpot_ms": 0.98}
    assert "tpot_ms met by 98.0% < 99.0%" in each.why
    assert judge(CapacitySearch(rate=(1, 2), attainment=0.98), slo, res).passed is True
    joint = judge(CapacitySearch(rate=(1, 2), attainment=0.98, per="request"), slo, res)
    assert joint.passed is False and joint.attainment == {"request": 0.97}
    only_ttft = judge(CapacitySearch(rate=(1, 2), attainment=0.99), SLO(ttft_ms=100), res)
    assert only_ttft.passed is True
    unknown = judge(CapacitySearch(rate=(1, 2)), slo, served(0.97, {}))  # before schema 1.12
    assert unknown.passed is None and "make images" in unknown.why
