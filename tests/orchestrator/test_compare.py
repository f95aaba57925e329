"""`llem-docker compare A B` on study folders written by hand (tests/orchestrator/test_report.py's
`make_study`): pairing by config hash, the summary line, serving points, every output format,
and the command's options and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from llem_docker.cli.compare import compare
from llem_docker.errors import ConfigError
from llem_docker.review.compare import (
    OWN_ARRIVALS,
    SAME_ARRIVALS,
    arrival_per_cycle,
    compare_studies,
    parse_margin,
)
from llem_docker.review.compare_render import (
    as_csv,
    as_json,
    draw_figure,
    html_page,
    markdown,
    print_comparison,
)
from llem_docker.store.layout import StudyDir
from tests.orchestrator.cliutil import Result, invoke
from tests.orchestrator.test_report import make_study

J = "energy_per_output_token_j"


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    """A, and B with 20% more energy: batch 1 (1% spread) differs, batch 4 (noisy) is
    inconclusive; tokens/s and TTFT are the same figures in both."""
    return make_study(tmp_path / "a", name="alpha"), make_study(
        tmp_path / "b", name="beta", scale=1.2
    )


def _keep(study_dir: Path, batch_size: int) -> None:
    """results.parquet with one point's rows only."""
    path = StudyDir(study_dir).results_parquet
    table = pq.read_table(path)
    pq.write_table(table.filter(pc.equal(table["swept.batch_size"], batch_size)), path)


def _set(study_dir: Path, column: str, values: list[Any], typ: Any) -> None:
    path = StudyDir(study_dir).results_parquet
    table = pq.read_table(path)
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, column, pa.array(values, typ)), path)


def test_points_pair_by_config_hash(two: tuple[Path, Path]) -> None:
    a, b = two
    sc = compare_studies(a, b)
    assert sc.summary() == "2 points on both sides: 1 different, 1 inconclusive at ±5% (J/token)"
    assert (sc.a.label, sc.b.label) == ("alpha", "beta") and not sc.only_a and not sc.only_b
    small, big = sc.pairs
    assert (small.label, big.label) == ("pytorch batch_size=1", "pytorch batch_size=4")
    assert [c.metric for c in small.results] == [J, "throughput_tokens_per_s", "ttft_ms_mean"]
    energy = small.result(J)
    assert energy is not None and energy.verdict == "different" and energy.n_a == energy.n_b == 3
    assert energy.rel_diff == pytest.approx(0.2)
    assert energy.mean_a == pytest.approx(101.0 / 200)  # test_report's FIGURES, per token
    noisy = big.result(J)
    assert noisy is not None and noisy.verdict == "inconclusive" and noisy.cycles_needed
    tps = small.result("throughput_tokens_per_s")
    assert tps is not None and tps.verdict == "equivalent" and tps.rel_diff == pytest.approx(0)
    assert sc.notes == []  # no serving point


def test_points_on_one_side_are_listed(two: tuple[Path, Path]) -> None:
    a, b = two
    _keep(b, 1)
    sc = compare_studies(a, b)
    assert sc.summary() == (
        "1 point on both sides: 1 different at ±5% (J/token); 1 point only in A"
    )
    assert [p.label for p in sc.only_a] == ["pytorch batch_size=4"] and not sc.only_b
    assert sc.only_a[0].completed == 3
    _keep(a, 4)
    none = compare_studies(a, b)
    assert none.summary() == "no point on both sides; 1 point only in A; 1 point only in B"
    assert draw_figure(none) is None
    assert "only in B: pytorch batch_size=1" in markdown(none)


def test_chosen_metrics_and_unknown_ones(two: tuple[Path, Path]) -> None:
    a, b = two
    sc = compare_studies(a, b, metrics=["energy_total_j", "requests_failed"], margin=0.5)
    assert sc.headline == "energy_total_j"
    assert sc.summary().endswith("at ±50% (energy)")
    first = sc.pairs[0].result("requests_failed")
    assert first is not None and first.reason == "not measured in either study"
    with pytest.raises(ConfigError) as err:
        compare_studies(a, b, metrics=["joules_per_vibe"])
    text = err.value.render()
    assert err.value.source == "--metric" and "`joules_per_vibe`" in text
    assert "energy_per_output_token_j" in text and "throughput_tokens_per_s" in text


def test_margin_text() -> None:
    assert parse_margin("5%") == pytest.approx(0.05)
    assert parse_margin(" 0.05 ") == pytest.approx(0.05)
    assert parse_margin("2.5%") == pytest.approx(0.025)
    for bad in ("0", "0%", "100%", "1", "5", "-3%", "five", "nan"):
        with pytest.raises(ConfigError) as err:
            parse_margin(bad)
        assert err.value.source == "--margin" and err.value.exit_code == 2


def test_serving_points_and_what_their_intervals_cover(two: tuple[Path, Path]) -> None:
    a, b = two
    for d, scale in ((a, 1.0), (b, 1.01)):
        rows = pq.read_table(StudyDir(d).results_parquet).num_rows
        _set(d, "scenario", ["serving"] * rows, pa.string())
        _set(d, "energy_per_request_j", [40.0 * scale + k % 3 * 0.1 for k in range(rows)],
             pa.float64())  # fmt: skip
        _set(d, "ttft_ms_p50", [30.0 + k % 3 for k in range(rows)], pa.float64())
    sc = compare_studies(a, b)
    metrics = [c.metric for c in sc.pairs[0].results]
    assert metrics == [J, "throughput_tokens_per_s", "ttft_ms_p50", "energy_per_request_j"]
    assert sc.pairs[0].serving
    assert sc.notes == [f"serving points: {SAME_ARRIVALS}"]
    run_ids = [r.name for r in StudyDir(b).runs.iterdir()]
    for run_id in run_ids:  # B's cycles draw their own arrivals
        path = StudyDir(b).run(run_id).result
        data = json.loads(path.read_text("utf-8"))
        data["config"]["serving"] = {**(data["config"].get("serving") or {}),
                                     "arrival_per_cycle": True}  # fmt: skip
        path.write_text(json.dumps(data), "utf-8")
    assert arrival_per_cycle(b, sorted(run_ids)) is True
    assert arrival_per_cycle(a, ["no-such-run"]) is None
    notes = compare_studies(a, b).notes
    assert notes == [
        f"serving points in A: {SAME_ARRIVALS}",
        f"serving points in B: {OWN_ARRIVALS}",
    ]
    assert "TTFT p50" in markdown(compare_studies(a, b))


def test_every_format(two: tuple[Path, Path]) -> None:
    a, b = two
    sc = compare_studies(a, b, env_lines=["GPU: H100 in A, H200 in B"])
    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    print_comparison(console, sc)
    text = console.export_text()
    assert text.startswith(sc.summary()) and "GPU: H100 in A, H200 in B" in text
    assert "inconclusive (n≈" in text and "20.0 [17.3, 22.7]" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    md = markdown(sc)
    assert md.startswith("# beta against alpha\n\n" + sc.summary())
    assert "| point | figure | A | B | B/A − 1 (%) [95%] | TOST p | Welch p | verdict (±5%) |" in md
    assert "| pytorch batch_size=1 | J/token | 0.505 [0.493, 0.518] (n=3) |" in md
    assert "## Environment" in md
    page = html_page(sc)
    assert "data:image/png;base64,iVBOR" in page and "<tr class=different>" in page
    data = json.loads(as_json(sc))
    got = data["points"][0]["comparisons"][0]
    want = sc.pairs[0].results[0]
    assert got["rel_low"] == want.rel_low and got["p_difference"] == want.p_difference  # unrounded
    assert data["counts"] == {"different": 1, "inconclusive": 1}
    assert data["environment"] == ["GPU: H100 in A, H200 in B"]
    rows = list(csv.DictReader(io.StringIO(as_csv(sc))))
    assert len(rows) == 6 and {r["present"] for r in rows} == {"both"}
    assert float(rows[0]["mean_b"]) == want.mean_b and rows[0]["verdict"] == "different"
    _keep(b, 1)
    rows = list(csv.DictReader(io.StringIO(as_csv(compare_studies(a, b)))))
    assert rows[-1]["present"] == "A" and rows[-1]["verdict"] == ""


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The command through the real entry point, registered for the test where the app
    does not have it yet."""
    from llem_docker.cli.app import app

    if not any(c.callback is compare for c in app.registered_commands):
        monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))
        app.command()(compare)
    return invoke(capsys, monkeypatch, "compare", *args)


def test_cli(
    two: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = map(str, two)
    res = _cli(capsys, monkeypatch, a, b)
    assert res.code == 0, res.err  # a "different" verdict is data, not a failure
    assert "2 points on both sides" in res.out and "B against A" in res.out
    res = _cli(capsys, monkeypatch, a, b, "--format", "json", "--margin", "0.25")
    assert res.code == 0 and json.loads(res.out)["margin"] == 0.25
    res = _cli(capsys, monkeypatch, a, b, "--format", "csv", "--metric", "energy_total_j")
    assert res.code == 0 and res.out.count("\n") == 3 and ",energy_total_j," in res.out
    res = _cli(capsys, monkeypatch, a, b, "--format", "html", "--out", str(tmp_path))
    assert res.code == 0 and (tmp_path / "compare.html").read_text().startswith("<!doctype")
    assert f"wrote {tmp_path / 'compare.html'}" in res.out
    out = tmp_path / "c.txt"
    res = _cli(capsys, monkeypatch, a, b, "--out", str(out))
    assert res.code == 0 and out.read_text().startswith("2 points on both sides")
    for args, where in (
        (("--margin", "150%"), "--margin"),
        (("--metric", "nope"), "--metric"),
        (("--out", str(tmp_path / "missing" / "x.md")), "--out"),
    ):
        res = _cli(capsys, monkeypatch, a, b, *args)
        assert res.code == 2 and where in res.err, res.err
    res = _cli(capsys, monkeypatch, a, str(tmp_path / "empty"))
    assert res.code == 2 and "no manifest.json" in res.err and "B: " in res.err
