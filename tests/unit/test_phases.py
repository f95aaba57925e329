"""Prefill and decode apart (llem_harness/phases.py): the subtraction and when it refuses."""

from __future__ import annotations

import pytest

from llem_harness.phases import phases_block


def test_decode_is_the_full_pass_minus_the_prefill_pass() -> None:
    # 64 prompts of 128 tokens, 128 out: 8192 input tokens, 8192 output tokens.
    p = phases_block(20.0, 1000.0, 8192, 64, 2.0, 150.0, 8192, None)
    assert (p.prefill.duration_s, p.prefill.energy_j, p.prefill.tokens) == (2.0, 150.0, 8192)
    assert p.prefill.energy_per_token_j == pytest.approx(150.0 / 8192)
    assert p.decode.duration_s == pytest.approx(18.0) and p.decode.energy_j == pytest.approx(850.0)
    assert p.decode.tokens == 8192 - 64
    assert p.decode.energy_per_token_j == pytest.approx(850.0 / 8128)
    assert p.method == "prefill_pass_subtraction"


def test_no_energy_keeps_the_durations_and_says_why() -> None:
    p = phases_block(10.0, None, 100, 10, 1.0, None, 500, "no NVIDIA GPU visible")
    assert p.decode.duration_s == pytest.approx(9.0) and p.decode.tokens == 90
    assert p.prefill.energy_j is None and p.prefill.unavailable_reason == "no NVIDIA GPU visible"
    assert p.decode.energy_j is None and p.decode.unavailable_reason == "no NVIDIA GPU visible"


def test_nothing_is_invented_when_the_subtraction_fails() -> None:
    slower = phases_block(1.0, 100.0, 100, 10, 1.2, 90.0, 500, None)
    assert slower.decode.duration_s is None and slower.decode.energy_j is None
    assert slower.decode.unavailable_reason is not None
    assert "cannot be separated" in slower.decode.unavailable_reason
    hungrier = phases_block(5.0, 100.0, 100, 10, 1.0, 120.0, 500, None)
    assert hungrier.decode.duration_s == pytest.approx(4.0) and hungrier.decode.energy_j is None
    assert (
        hungrier.decode.unavailable_reason
        == "the prefill pass used as much energy as the full pass"
    )
    single = phases_block(5.0, 100.0, 10, 10, 1.0, 20.0, 500, None)
    assert single.decode.tokens == 0 and single.decode.unavailable_reason is not None


def test_a_cache_that_may_serve_repeated_prompts_splits_nothing() -> None:
    p = phases_block(20.0, 1000.0, 8192, 64, 2.0, 150.0, 8192, None, reuse="prefix caching on")
    assert p.prefill.energy_j is None and p.prefill.duration_s is None
    assert p.decode.unavailable_reason == p.prefill.unavailable_reason == "prefix caching on"


def test_a_prefill_window_without_energy_says_its_own_reason() -> None:
    p = phases_block(20.0, 1000.0, 8192, 64, 2.0, None, 8192, None, "the window was too short")
    assert p.prefill.unavailable_reason == "the window was too short"
    assert p.decode.energy_j is None and p.decode.unavailable_reason == "the window was too short"
