"""The report's 95% intervals (report/stats.py): on the log scale for figures that cannot be
negative, so that they never cross zero; Student's t on x where a value is ≤ 0 or the figure
can be 0; none with one value. The same interval in the tables, CSV, JSON and the figures'
error bars."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest

from llem_docker.report.render import as_csv, as_json
from llem_docker.report.stats import error_bars, summarize
from llem_docker.report.table import cell, fallback_lines
from tests.orchestrator.test_report_terminal import quickstart_like

QUICKSTART_TPS = [164.0, 651.0, 1394.0]  # tok/s of one point in three cycles (issue 30)


def test_the_log_interval_of_throughput_stays_above_zero() -> None:
    s = summarize(QUICKSTART_TPS)
    assert s.method == "log"
    assert s.mean is not None and s.low is not None and s.high is not None
    assert s.mean - (s.ci95 or 0) < 0  # the linear interval would reach -800 tok/s
    assert 0 < s.low < s.mean < s.high
    assert s.high - s.mean > 3 * (s.mean - s.low)  # asymmetric: further above than below
    logs = [math.log(x) for x in QUICKSTART_TPS]  # by hand: Student's t on ln x, 2 d.f.
    half = 4.302653 * statistics.stdev(logs) / math.sqrt(3)
    assert s.low == pytest.approx(math.exp(statistics.fmean(logs) - half))
    assert s.high == pytest.approx(math.exp(statistics.fmean(logs) + half))
    assert s.mean == pytest.approx(sum(QUICKSTART_TPS) / 3)  # the headline stays arithmetic
    assert s.std == pytest.approx(statistics.stdev(QUICKSTART_TPS))
    assert cell(s, full=False) == "736 [36, 7844]"


def test_one_value_has_no_interval() -> None:
    s = summarize([651.0, None])
    assert (s.n, s.mean, s.std, s.ci95, s.low, s.high, s.method) == (
        1, 651.0, None, None, None, None, None,
    )  # fmt: skip
    assert cell(s) == "651 (n=1)" and error_bars([s]) == [[0.0], [0.0]]


def test_linear_where_a_value_is_not_positive_or_the_figure_can_be_zero() -> None:
    with_zero = summarize([0.0, 1.0, 2.0])  # no logarithm of 0
    assert with_zero.method == "linear"
    assert with_zero.low == pytest.approx(1 - 4.302653 / math.sqrt(3))
    counts = summarize([1.0, 2.0, 3.0], log=False)
    assert counts.method == "linear" and counts.ci95 is not None
    assert (counts.low, counts.high) == pytest.approx((2 - counts.ci95, 2 + counts.ci95))


def test_error_bars_are_the_interval_and_never_reach_zero() -> None:
    s = summarize(QUICKSTART_TPS)
    (below,), (above,) = error_bars([s])
    assert s.mean is not None and s.low is not None and s.high is not None
    assert s.mean - below == pytest.approx(s.low) and s.mean + above == pytest.approx(s.high)
    assert s.mean - below > 0 and above > below


def test_csv_and_json_carry_the_interval_and_the_fallback_is_named(tmp_path: Path) -> None:
    r = quickstart_like(tmp_path)
    rows = list(csv.DictReader(io.StringIO(as_csv(r))))
    s = r.points[0].stats["throughput_tokens_per_s"]
    got = rows[0]
    assert s.low is not None and s.low > 0
    assert float(got["throughput_tokens_per_s_ci_lo"]) == s.low
    assert float(got["throughput_tokens_per_s_ci_hi"]) == s.high
    assert got["throughput_tokens_per_s_ci_method"] == "log"
    assert float(got["throughput_tokens_per_s_ci95"]) == s.ci95  # the old column, kept
    assert got["energy_per_output_token_j_ci_lo"] == ""  # not measured: empty, not 0
    stats = json.loads(as_json(r, None))["points"][0]["stats"]["throughput_tokens_per_s"]
    assert (stats["ci_lo"], stats["ci_hi"], stats["ci_method"]) == (s.low, s.high, "log")
    assert fallback_lines(r) == []
    r.points[1].stats["ttft_ms_mean"] = summarize([0.0, 1.0, 2.0])
    (line,) = fallback_lines(r)
    assert "Student's t on x instead" in line and "pytorch batch_size=4: TTFT (ms)" in line
