"""The steady-state window (ML.ENERGY's rule) against hand-worked request timelines."""

from __future__ import annotations

import pytest

from llem_harness.energy.base import Sample
from llem_harness.steady import measure_steady, steady_window, tokens_within


def test_window_runs_from_full_concurrency_until_the_first_drop() -> None:
    # in flight: A from 0, B from 1 (2 → start), B ends at 5 (1 → end), C from 6.
    spans = [(0.0, 10.0, 11), (1.0, 5.0, 5), (6.0, 12.0, 7)]
    assert steady_window(spans, 2) == (1.0, 5.0)
    assert steady_window(spans, 3) is None  # never three at once


def test_tokens_are_spread_evenly_between_first_and_last() -> None:
    # 10 tokens at t = 0, 1, ..., 9
    assert tokens_within([(0.0, 9.0, 10)], 2.5, 5.0) == 3  # t = 3, 4, 5
    assert tokens_within([(0.0, 9.0, 10)], 0.0, 9.0) == 10
    assert tokens_within([(0.0, 9.0, 10)], 9.5, 20.0) == 0
    assert tokens_within([(4.0, 4.0, 1)], 0.0, 5.0) == 1
    assert tokens_within([(4.0, 4.0, 1)], 5.0, 6.0) == 0


def _flat(watts: float, t_end: float) -> list[Sample]:
    return [
        Sample(t / 10, 0, watts, None, None, None, None, None) for t in range(int(t_end * 10) + 1)
    ]


def test_measure_steady_with_a_power_timeseries() -> None:
    spans = [(100.0, 110.0, 11), (101.0, 105.0, 5)]  # window 101..105 on the monotonic clock
    got = measure_steady(spans, 2, _flat(200.0, 20.0), origin=95.0)  # samples: t_s 0..20
    assert got.duration_s == pytest.approx(4.0)
    assert got.output_tokens == 5 + 5  # A: t = 101..105 of 100..110; B: all five
    assert got.energy_j == pytest.approx(800.0)  # 200 W × 4 s
    assert got.energy_per_output_token_j == pytest.approx(800.0 / got.output_tokens)
    assert got.unavailable_reason is None


def test_measure_steady_says_why_when_it_cannot() -> None:
    assert "per-request" in (measure_steady([], 4, [], None).unavailable_reason or "")
    never = measure_steady([(0.0, 1.0, 2)], 4, [], None)
    assert never.duration_s is None and "never 4 requests" in (never.unavailable_reason or "")
    no_power = measure_steady([(0.0, 4.0, 5), (1.0, 3.0, 3)], 2, [], None)
    assert no_power.output_tokens == 3 + 3 and no_power.energy_j is None
    assert "no power timeseries" in (no_power.unavailable_reason or "")
