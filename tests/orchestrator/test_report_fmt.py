"""One number format for every report output (report/fmt.py): no scientific notation between
1e-6 and 1e9, the interval to two significant figures of its half-width and the mean to that
decimal place, each bound keeping two significant figures of its own."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llem_docker.report.fmt import bounds, interval, num, spread
from llem_docker.report.stats import Summary, summarize
from llem_docker.report.table import cell

NAN = float("nan")


@pytest.mark.parametrize(
    ("mean", "half", "text"),
    [
        (2619.3, 482.1, "2619 ± 480"),  # was `2619 ± 5e+02`
        (0.00087771, 0.0000803, "0.000878 ± 0.000080"),  # was `0.0008777 ± 8e-05`
        (0.0008777, 8e-05, "0.000878 ± 0.000080"),
        (-2619.3, 482.1, "-2619 ± 480"),
        (-0.2, 300.0, "0 ± 300"),  # no "-0"
        (9.96, 0.0996, "9.96 ± 0.10"),  # 0.0996 rounds up to 0.10: two decimals
        (123456.7, 0.4, "123456.70 ± 0.40"),
        (2619.0, 5e-7, "2619.00000000 ± 0.00000050"),  # a tiny interval stays fixed-point
        (5.0, 0.0, "5 ± 0"),  # every cycle the same
        (0.0, 0.0, "0 ± 0"),
        (2.5e12, 3e10, "2.500e+12 ± 3.0e+10"),  # huge: scientific
        (1e-7, 1e-8, "1.00e-07 ± 1.0e-08"),  # below 1e-6: scientific
        (5.0, None, "5"),  # one run: no interval
        (5.0, NAN, "5"),
        (None, 1.0, "n/a"),
        (NAN, 1.0, "n/a"),
        (math.inf, 1.0, "inf"),
    ],
)
def test_interval(mean: float | None, half: float | None, text: str) -> None:
    assert interval(mean, half) == text


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2619.3, "2619"),
        (123456.7, "123457"),  # the whole part is never rounded away
        (0.00087771, "0.0008777"),
        (5.0, "5"),
        (0.30000000000000004, "0.3"),
        (-3.25, "-3.25"),
        (0.0, "0"),
        (-0.0, "0"),
        (999_999_999.0, "999999999"),
        (1e9, "1e+09"),
        (1e-6, "0.000001"),
        (9.99e-7, "9.99e-07"),
        (None, "n/a"),
        (NAN, "n/a"),
        (-math.inf, "-inf"),
    ],
)
def test_num(x: float | None, text: str) -> None:
    assert num(x) == text


def test_spread() -> None:
    assert [spread(x) for x in (482.1, 0.0000803, 5.0, 0.0, None, 3e10)] == [
        "480", "0.000080", "5.0", "0", "n/a", "3.0e+10",
    ]  # fmt: skip
    assert spread(1e-7, 0.0000101) == "0.00000010"  # as the mean beside it: fixed-point
    assert spread(2e-12, 2.02e-10) == "2.0e-12"
    assert spread(3e10, 5.0) == "3.0e+10"


def test_cells_of_every_text_output() -> None:
    s = Summary(n=3, mean=2619.3, std=194.1, ci95=482.1, cv=0.07)  # a linear interval
    assert (s.low, s.high, s.method) == (2619.3 - 482.1, 2619.3 + 482.1, "linear")
    assert cell(s) == "2619 [2137, 3101] (sd 190, n=3)"
    assert cell(s, full=False) == "2619 [2137, 3101]"
    tiny = summarize([0.00080, 0.00088, 0.00095])  # on the log scale
    assert "e-" not in cell(tiny) and cell(tiny).startswith("0.00088 [0.00071, 0.00108]")
    assert cell(summarize([5.0])) == "5 (n=1)"  # a missing CI with n=1
    assert cell(summarize([None])) == "n/a"
    assert cell(summarize([-1.0, -1.0])) == "-1 [-1, -1] (sd 0, n=2)"
    assert cell(summarize([5.0, 5.0])) == "5 [5, 5] (sd 0, n=2)"
    co2 = Summary(n=3, mean=0.0000101, std=1e-7, ci95=2.5e-7, cv=0.01)
    assert cell(co2) == "0.00001010 [0.00000985, 0.00001035] (sd 0.00000010, n=3)"


@pytest.mark.parametrize(
    ("mean", "low", "high", "text"),
    [
        (736.3, 35.796, 7845.5, "736 [36, 7846]"),  # 164, 651, 1394 tok/s
        (2619.3, 2137.2, 3101.4, "2619 [2137, 3101]"),
        (101.0, 98.54, 103.51, "101.0 [98.5, 103.5]"),
        (2619.3, 0.5, 50000.0, "2619 [0.50, 50000]"),  # a low bound near 0 is not "0"
        (0.4, -1.064, 1.931, "0.4 [-1.1, 1.9]"),  # a linear interval may cross 0
        (2.5e12, 2.26e12, 2.76e12, "2.50e+12 [2.26e+12, 2.76e+12]"),
        (5.0, None, None, "5"),
        (None, 1.0, 2.0, "n/a"),
        (5.0, NAN, 6.0, "5"),
    ],
)
def test_bounds(mean: float | None, low: float | None, high: float | None, text: str) -> None:
    assert bounds(mean, low, high) == text


def test_plot_ticks_use_the_same_format(tmp_path: Path) -> None:
    from llem_docker.report.plots import _figure

    fig, ax = _figure()
    ax.plot([0.0, 1.0], [0.0002, 0.0009])
    fmt = ax.yaxis.get_major_formatter()
    assert fmt(0.0002, 0) == "0.0002" and fmt(2600.0, 0) == "2600" and fmt(1e-7, 0) == "1e-07"
    fig.savefig(tmp_path / "f.png")
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and not any("e-" in t for t in labels)
    assert not ax.yaxis.get_offset_text().get_text()  # no "1e-4" multiplier above the axis
