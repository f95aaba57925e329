"""Prefill and decode apart (llem_harness/phases.py): the subtraction and when it refuses."""

from __future__ import annotations

import time

import pytest

from llem_harness.energy.measurement import Meters
from llem_harness.phases import phases_block, prefill_pass


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


class _Reading:
    def __init__(self, total_j: float | None, why: str | None = None) -> None:
        self.total_j, self.unavailable_reason = total_j, why
        self.start_s = self.end_s = None  # no timeseries


class _Meter:
    """A GPU meter whose counter reads `joules` over the window."""

    def __init__(self, joules: float | None) -> None:
        self.joules, self.windows = joules, 0

    def begin_window(self) -> None:
        self.windows += 1

    def end_window(self) -> _Reading:
        return _Reading(self.joules, None if self.joules is not None else "no NVIDIA GPU")


class _Backend:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, 0

    def synchronize(self) -> None:
        pass

    def generate(self, prompts: list[list[int]], *, timed: bool, output_tokens: int) -> object:
        assert output_tokens == 1 and not timed
        self.calls += 1
        time.sleep(self.seconds)
        return type("R", (), {"input_tokens": sum(map(len, prompts))})()


def test_a_short_prefill_pass_repeats_inside_one_window_and_reports_one_pass() -> None:
    backend, meter = _Backend(0.01), _Meter(90.0)
    got = prefill_pass(backend, Meters(meter), [[1] * 4, [2] * 6], min_s=0.1, max_passes=64)
    assert meter.windows == 1 and got.passes == backend.calls and 5 <= got.passes < 64
    assert got.tokens == 10 and got.energy_j == pytest.approx(90.0 / got.passes)
    assert 0.01 <= got.seconds < 0.05 and got.unavailable_reason is None
    capped = prefill_pass(_Backend(0.01), Meters(_Meter(9.0)), [[1]], min_s=10.0, max_passes=3)
    assert capped.passes == 3 and capped.energy_j == pytest.approx(3.0)
    long = prefill_pass(_Backend(0.05), Meters(_Meter(9.0)), [[1]], min_s=0.01)
    assert long.passes == 1 and long.energy_j == pytest.approx(9.0)


def test_a_counter_that_did_not_move_is_null_with_the_reason_never_zero() -> None:
    got = prefill_pass(_Backend(0.0), Meters(_Meter(0.0)), [[1]], min_s=0.0)
    assert got.energy_j is None and got.unavailable_reason is not None
    assert "did not advance" in got.unavailable_reason
    p = phases_block(7.0, 2454.0, 32768, 64, got.seconds, got.energy_j, 8192, None,
                     got.unavailable_reason, prefill_passes=got.passes)  # fmt: skip
    assert p.prefill.energy_j is None and p.decode.energy_j is None
    assert p.decode.unavailable_reason == got.unavailable_reason and p.prefill.passes == 1
    none = prefill_pass(_Backend(0.0), Meters(_Meter(None)), [[1]], min_s=0.0)
    assert none.energy_j is None and none.unavailable_reason == "no NVIDIA GPU"


def test_one_window_gives_one_measurement_with_a_reason_for_each_null() -> None:
    from llem_harness.energy.null import NullMeter

    meters = Meters(NullMeter("no NVIDIA GPU visible"))
    with meters.window() as w:
        time.sleep(0.02)
    m = w.result()
    assert m.seconds >= 0.02 and m.opened > 0 and m.co2_kg is None and m.samples == []
    assert m.gpu.total_j is None and m.gpu.unavailable_reason == "no NVIDIA GPU visible"
    assert m.cpu.cpu_j is None and m.cpu.unavailable_reason  # RAPL, or why not
    with meters.window(cpu=False) as w:
        pass
    assert w.result().cpu.unavailable_reason == "not read for this window"
    with pytest.raises(AssertionError, match="still open"), meters.window() as w:
        w.result()
