"""The steady-state window against synthetic request timelines (waves of a fixed output length,
staggered requests) and, where one was recorded on a GPU, a real timeline from bench/results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_harness.energy.base import Sample
from llem_harness.steady import (
    Span,
    measure_steady,
    read_requests,
    steady_window,
    tokens_within,
    write_requests,
)

REPO = Path(__file__).resolve().parents[2]


def waves(n_requests: int, slots: int, n_tokens: int, step_s: float, t0: float = 0.0) -> list[Span]:
    """An engine with `slots` slots given every request at once, every request `n_tokens` long:
    each wave prefills on one step, decodes `n_tokens - 1` more steps, and finishes on one step;
    the next wave's first token comes one step after that (as vLLM schedules it)."""
    wave_s = n_tokens * step_s  # first token .. one step past the last token
    spans = []
    for i in range(n_requests):
        first = t0 + (i // slots) * wave_s
        spans.append((first, first + (n_tokens - 1) * step_s, n_tokens))
    return spans


def test_waves_of_a_fixed_length_stay_in_one_window() -> None:
    # 10 waves of 4 requests, 8 tokens, 1 ms steps: every wave ends on one step, so the count
    # of requests in flight drops to 0 at each boundary while 4 more requests already wait.
    spans = waves(40, 4, 8, 0.001)
    window = steady_window(spans, 4)
    assert window is not None
    start, end = window
    # From the first wave's first token to the last wave's: nine of the ten waves, not one.
    assert start == pytest.approx(0.0)
    assert end == pytest.approx(9 * 8 * 0.001)
    whole = max(last for _, last, _ in spans) - min(first for first, _, _ in spans)
    assert (end - start) / whole > 0.85  # the old in-flight rule gave 7 ms of 79 ms


def test_staggered_requests_exclude_ramp_and_drain() -> None:
    # 2 slots; requests of different lengths; the 2nd first token opens, the last one closes.
    spans = [(0.0, 4.0, 5), (0.5, 2.0, 4), (2.5, 6.0, 5), (4.5, 9.0, 6), (6.5, 8.0, 3)]
    assert steady_window(spans, 2) == (0.5, 6.5)


def test_no_window_when_no_request_ever_waits() -> None:
    assert steady_window([(0.0, 1.0, 2), (0.0, 1.0, 2)], 2) is None  # all fit at once
    assert steady_window([(0.0, 1.0, 2)], 4) is None
    assert steady_window([(1.0, 2.0, 2), (1.0, 2.0, 2), (1.0, 3.0, 3)], 1) is None  # empty


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
    # 1 slot, three requests of 5 tokens: first tokens at 100, 105, 110 (monotonic clock).
    spans = [(100.0, 104.0, 5), (105.0, 109.0, 5), (110.0, 114.0, 5)]
    got = measure_steady(spans, 1, _flat(200.0, 30.0), origin=95.0)  # samples: t_s 0..30
    assert got.start_s == pytest.approx(100.0) and got.duration_s == pytest.approx(10.0)
    assert got.output_tokens == 5 + 5 + 1  # two whole requests, the last one's first token
    assert got.energy_j == pytest.approx(2000.0)  # 200 W x 10 s
    assert got.energy_per_output_token_j == pytest.approx(2000.0 / 11)
    assert got.unavailable_reason is None


def test_measure_steady_says_why_when_it_cannot() -> None:
    assert "per-request" in (measure_steady([], 4, [], None).unavailable_reason or "")
    never = measure_steady([(0.0, 1.0, 2)], 4, [], None)
    assert never.duration_s is None and "never ran saturated" in (never.unavailable_reason or "")
    no_power = measure_steady([(0.0, 4.0, 5), (1.0, 3.0, 3)], 1, [], None)
    assert no_power.output_tokens == 2 + 1 and no_power.energy_j is None
    assert "no power timeseries" in (no_power.unavailable_reason or "")


def test_requests_file_round_trip(tmp_path: Path) -> None:
    spans = waves(6, 2, 4, 0.5, t0=1000.0)
    path = tmp_path / "requests.parquet"
    assert write_requests(path, spans, [999.0] * 6, t0=999.0) == 6
    back = read_requests(path)
    assert back == [(f - 999.0, last - 999.0, n) for f, last, n in spans]
    (tmp_path / "requests.json").write_text(json.dumps([list(s) for s in spans]))
    assert read_requests(tmp_path / "requests.json") == spans


def _offline(path: Path) -> bool:
    """Not a serving run's requests.parquet (another file under the same name: its
    per-request latencies, docs/serving.md), which has no offline steady window."""
    result = path.with_name("result.json")
    return not (result.exists() and json.loads(result.read_text()).get("serving"))


RECORDED = sorted(
    p
    for p in [
        *REPO.glob("bench/results/**/requests.parquet"),
        *REPO.glob("bench/results/**/requests.json"),
    ]
    if _offline(p)
)


@pytest.mark.skipif(not RECORDED, reason="no per-request timeline recorded in bench/results yet")
@pytest.mark.parametrize("path", RECORDED, ids=lambda p: str(p.relative_to(REPO)))
def test_recorded_timeline(path: Path) -> None:
    """A timeline recorded on a GPU (bench/gpu_vllm.py): the window must cover most of the
    run, and its throughput must be at least the whole run's (ramp and drain are slower)."""
    spans = read_requests(path)
    meta_path, result_path = path.with_name("requests_meta.json"), path.with_name("result.json")
    if meta_path.exists():
        concurrency = int(json.loads(meta_path.read_text())["concurrency"])
    else:  # a run folder: the concurrency its result recorded
        concurrency = int(json.loads(result_path.read_text())["steady_state"]["concurrency"])
    window = steady_window(spans, concurrency)
    assert window is not None
    t0, t1 = window
    begin = min(first for first, _, _ in spans)
    end = max(last for _, last, _ in spans)
    assert (t1 - t0) / (end - begin) > 0.5
    whole_rate = sum(n for _, _, n in spans) / (end - begin)
    assert tokens_within(spans, t0, t1) / (t1 - t0) >= 0.95 * whole_rate
