"""The energy–latency Pareto front (report/pareto.py) and `report --best` (report/best.py) on
made-up points: the front per scenario with its directions and ties, the figure and the line
under the table, the picker's winner and runners-up on made-up per-cycle values, no feasible
point, and bad `--best`/`--by` input through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.errors import ConfigError
from llem_docker.report.best import (
    as_dict,
    lines,
    markdown,
    parse_best,
    parse_by,
    pick,
)
from llem_docker.report.pareto import OFFLINE, SERVING, front, front_lines, fronts, on_front
from llem_docker.report.plots import draw
from llem_docker.report.points import METRICS, Point, Report, Study, _finish
from llem_docker.report.quality import frontier
from llem_docker.report.serving import SERVING_METRICS
from llem_docker.report.table import main_parts
from tests.orchestrator.cliutil import invoke

SAMPLES = {
    "a": [10.0, 10.2, 9.8],
    "b": [10.3, 10.6, 9.9],  # close to a: not significantly worse
    "c": [20.0, 20.2, 19.9],  # twice a: significantly worse
    "d": [5.0, 5.1, 4.9],  # cheapest, but its TTFT breaks the constraint
}


def _point(name: str, figures: dict[str, list[float]], *, serving: bool, study: str = "s") -> Point:
    facts = {"scenario": "serving" if serving else "offline"}
    p = Point(f"h-{name}", "vllm", "m", {"point": name}, runs=3, completed=3, study=study,
              run_valid=[True] * 3, facts=facts)  # fmt: skip
    values: dict[str, list[float | None]] = {m: [None] * 3 for m in (*METRICS, *SERVING_METRICS)}
    values |= {m: [*v] for m, v in figures.items()}
    _finish(p, values, 0.05)
    return p


def _serving(name: str, jpr: list[float], ttft: float) -> Point:
    return _point(name, {"energy_per_request_j": jpr, "ttft_ms_p99": [ttft] * 3}, serving=True)


def _offline(name: str, jpt: float, tps: float) -> Point:
    figures = {"energy_per_output_token_j": [jpt] * 3, "throughput_tokens_per_s": [tps] * 3}
    return _point(name, figures, serving=False)


def _report(tmp_path: Path, points: list[Point]) -> Report:
    data = {"study_name": "s", "state": "completed", "design_hash": "0" * 16}
    return Report([Study("s", tmp_path, data)], points, ["point"], 0.05)


def _serving_points() -> list[Point]:
    ttft = {"a": 300.0, "b": 200.0, "c": 100.0, "d": 900.0}
    return [_serving(n, v, ttft[n]) for n, v in SAMPLES.items()]


def test_front_takes_a_direction_per_axis_and_keeps_ties() -> None:
    rows = [(1.0, 5.0), (2.0, 4.0), (2.0, 6.0), (3.0, 3.0), (2.0, 4.0)]
    assert front(rows, ("min", "min")) == [0, 1, 4, 3]  # (2, 6) loses to (1, 5); ties stay
    assert front(rows, ("max", "max")) == [2, 3]
    assert front(rows, ("min", "max")) == [0, 2] == frontier(rows)  # quality's frontier
    assert front(rows, ("max", "min")) == [3]  # the most on x, the least on y: beats all
    assert front([], ("min", "min")) == [] and front([(1.0, 1.0)], ("min", "max")) == [0]
    assert front([(1.0, 1.0), (1.0, 1.0)], ("min", "min")) == [0, 1]


def test_serving_front_is_lower_energy_and_lower_ttft_p99() -> None:
    pts = _serving_points()  # J/request ≈ a 10, b 10.3, c 20, d 5; TTFT a 300, b 200, c 100, d 900
    assert [p.swept["point"] for p in on_front(pts, SERVING)] == ["c", "b", "a", "d"]
    worse = _serving("e", [11.0] * 3, 350.0)  # beaten by a on both
    assert "e" not in [p.swept["point"] for p in on_front([*pts, worse], SERVING)]


def test_offline_front_is_lower_energy_and_higher_throughput_by_scenario(tmp_path: Path) -> None:
    pts = [_offline("x", 0.01, 100.0), _offline("y", 0.02, 300.0), _offline("z", 0.03, 250.0),
           _offline("t", 0.01, 100.0)]  # fmt: skip
    assert [p.swept["point"] for p in on_front(pts, OFFLINE)] == ["x", "t", "y"]
    r = _report(tmp_path, [*pts, *_serving_points()])  # scenarios are fronted apart
    assert {k: len(v) for k, v in fronts(r).items()} == {"serving": 4, "offline": 3}
    serving, offline = front_lines(r)
    assert "Pareto front, serving (lower J/request (J), lower TTFT p99 (ms)" in serving
    assert offline.endswith("vllm point=x; vllm point=t; vllm point=y")
    assert offline in main_parts(r)[1]
    assert "pareto.png" in draw(r, tmp_path / "figs").written
    assert (tmp_path / "figs" / "pareto.png").stat().st_size > 10_000


def test_without_energy_no_front_is_drawn_nor_named(tmp_path: Path) -> None:
    p = _point("cpu", {"throughput_tokens_per_s": [100.0] * 3}, serving=False)
    p.energy_reason = "NVML unavailable"
    r = _report(tmp_path, [p, _point("cpu2", {"throughput_tokens_per_s": [90.0] * 3},
                                     serving=False)])  # fmt: skip
    figs = draw(r, tmp_path / "figs")
    assert "NVML unavailable" in figs.skipped["pareto.png"] and front_lines(r) == []


def _samples(points: list[Point]) -> dict[tuple[Path, str], dict[str, list[float]]]:
    return {(p.study_dir, p.config_hash): {"energy_per_request_j": SAMPLES[p.swept["point"]]}
            for p in points}  # fmt: skip


def test_pick_the_winner_and_the_runners_up_not_significantly_worse() -> None:
    pts = _serving_points()
    constraints = parse_best("ttft_ms_p99<=500, ttft_ms_p99 > 0")
    result = pick(pts, constraints, "energy_per_request_j", _samples(pts))
    assert result.winner is not None and result.winner.swept["point"] == "a"
    assert [p.swept["point"] for p, _ in result.runners_up] == ["b"]
    assert [p.swept["point"] for p, _ in result.worse] == ["c"]
    assert result.runners_up[0][1].p_difference is not None
    assert result.runners_up[0][1].p_difference >= 0.05
    assert [(p.swept["point"], v) for p, v in result.infeasible] == [
        ("d", ["ttft_ms_p99<=500 (mean 900)"])
    ]
    text = "\n".join(lines(result))
    assert "winner: vllm point=a: 10" in text and "not significantly worse" in text
    assert "## Best under constraints" in markdown(result)
    data = json.loads(json.dumps(as_dict(result)))
    assert data["winner"]["point"] == "vllm point=a" and data["runners_up"][0]["point"].endswith(
        "b"
    )
    fastest = pick(pts, [], "ttft_ms_p99", {}, maximise=False)  # no per-cycle values: untested
    assert fastest.winner is not None and fastest.winner.swept["point"] == "c"
    assert "untested, fewer than 2 cycles" in "\n".join(lines(fastest))
    metric, maximise = parse_by("max:ttft_ms_p99", pts)
    slowest = pick(pts, [], metric, {}, maximise=maximise).winner
    assert slowest is not None and slowest.swept["point"] == "d"


def test_no_feasible_point_lists_what_each_breaks() -> None:
    pts = _serving_points()
    result = pick(pts, parse_best("ttft_ms_p99<50,tpot_ms_p99<=50"), "energy_per_request_j", {})
    assert result.winner is None and len(result.infeasible) == 4
    text = "\n".join(lines(result))
    assert "no point meets the constraints" in text
    assert "vllm point=c: ttft_ms_p99<50 (mean 100); tpot_ms_p99<=50 (not measured)" in text
    assert parse_by(None, pts) == ("energy_per_request_j", False)
    assert parse_by(None, [_offline("x", 0.01, 1.0)]) == ("energy_per_output_token_j", False)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ttft<=500", "`ttft` in `ttft<=500` is not a figure"),
        ("ttft_ms_p99=500", "has no operator"),
        ("ttft_ms_p99<=fast", "`fast` in `ttft_ms_p99<=fast` is not a number"),
        ("ttft_ms_p99<=nan", "is not a number"),
    ],
)
def test_bad_best_is_refused(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--best") as err:
        parse_best(text)
    assert says in err.value.message and "energy_per_request_j" in (err.value.fix or "")


def test_bad_best_and_by_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = invoke(capsys, monkeypatch, "report", str(tmp_path), "--best", "ttft_ms_p99=>500")
    assert bad.code == 2 and "--best" in bad.err and "ttft_ms_p99" in bad.err
    by = invoke(capsys, monkeypatch, "report", str(tmp_path), "--by", "max:joules")
    assert by.code == 2 and "--by" in by.err and "`joules`" in by.err
    csv = invoke(capsys, monkeypatch, "report", str(tmp_path), "--best", "", "--format", "csv")
    assert csv.code == 2 and "--best has no --format csv" in csv.err


def test_best_end_to_end_on_a_study_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.orchestrator.test_report import make_study

    study = str(make_study(tmp_path))  # two offline points with energy, three cycles each
    res = invoke(capsys, monkeypatch, "report", study, "--best", "throughput_tokens_per_s>0",
                 "--format", "json", "--no-plots")  # fmt: skip
    assert res.code == 0, res.err
    best = json.loads(res.out)["best"]
    assert best["by"] == "energy_per_output_token_j" and best["winner"]["n"] == 3
    assert len(best["runners_up"]) + len(best["significantly_worse"]) == 1
    table = invoke(capsys, monkeypatch, "report", study, "--best", "energy_total_j<0")
    assert table.code == 0 and "no point meets the constraints" in table.out
    md = invoke(capsys, monkeypatch, "report", study, "--by", "max:throughput_tokens_per_s",
                "--format", "md", "--no-plots")  # fmt: skip
    assert md.code == 0, md.err
    page = (Path(study) / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Best under constraints" in page and "- winner: " in page
