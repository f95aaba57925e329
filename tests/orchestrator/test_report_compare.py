"""`llem-docker report A B …`: several study folders side by side with a `study` column in
every output, `--format csv`, the `--format` choices, and `load_results` of several folders.
The study folders are built through the real collect/parquet path
(tests/orchestrator/test_report.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest

from llem_docker.report.plots import draw
from llem_docker.report.points import build_report, build_reports
from llem_docker.report.render import as_csv, html_page, markdown
from llem_docker.store.load import _concat, load_results, study_labels
from tests.orchestrator.cliutil import invoke
from tests.orchestrator.test_report import OUTPUT_TOKENS, make_study


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    """Studies `alpha` and `beta` (twice alpha's energy) with the same design."""
    return make_study(tmp_path / "a", name="alpha"), make_study(
        tmp_path / "b", name="beta", scale=2.0
    )


def test_points_of_two_studies_stay_apart(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    r = build_reports([a, b])
    assert r.comparing and [s.label for s in r.studies] == ["alpha", "beta"]
    assert [(p.study, p.swept["batch_size"]) for p in r.points] == [
        ("alpha", 1), ("alpha", 4), ("beta", 1), ("beta", 4),
    ]  # fmt: skip
    # the same config in both studies: same hash, separate statistics
    assert r.points[0].config_hash == r.points[2].config_hash
    ja, jb = (r.points[i].stats["energy_per_output_token_j"].mean for i in (0, 2))
    assert ja == pytest.approx(101.0 / OUTPUT_TOKENS) and jb == pytest.approx(202.0 / OUTPUT_TOKENS)

    md = markdown(r, None)
    assert "| study | point | runs |" in md
    assert "| alpha | pytorch batch_size=1 | 3/3 |" in md
    assert "| beta | pytorch batch_size=4 | 3/3 |" in md
    assert f"- study alpha = alpha: completed, design {r.studies[0].data['design_hash'][:12]}" in md
    page = html_page(r, None)
    assert "<th>study</th><th>point</th>" in page and "<td>beta</td>" in page

    rows = list(csv.DictReader(io.StringIO(as_csv(r))))
    assert [(x["study"], x["swept.batch_size"]) for x in rows] == [
        ("alpha", "1"), ("alpha", "4"), ("beta", "1"), ("beta", "4"),
    ]  # fmt: skip
    s = r.points[3].stats["energy_per_output_token_j"]
    got = rows[3]
    assert float(got["energy_per_output_token_j_mean"]) == s.mean  # unrounded
    assert float(got["energy_per_output_token_j_ci95"]) == s.ci95
    assert got["energy_per_output_token_j_n"] == "3" and got["config_hash"]
    assert "CV of J/token" in got["flags"]

    figs = draw(r, tmp_path / "fig")
    assert "power_timeline.png" in figs.written and not figs.skipped


def test_one_study_has_no_study_column(two: tuple[Path, Path]) -> None:
    r = build_report(two[0])
    assert not r.comparing
    md = markdown(r, None)
    assert md.startswith("# alpha: completed, design ") and "| point | runs |" in md
    assert "| study |" not in md and "- study " not in md
    assert "<th>study</th>" not in html_page(r, None)
    rows = list(csv.DictReader(io.StringIO(as_csv(r))))  # csv always names the study
    assert {x["study"] for x in rows} == {"alpha"}


def test_labels_when_names_collide(tmp_path: Path) -> None:
    a = make_study(tmp_path / "x", folder="synth_20260101T000000Z")
    b = make_study(tmp_path / "y", folder="synth_20260102T000000Z")
    c = make_study(tmp_path / "z", folder="synth_20260102T000000Z")
    d = make_study(tmp_path / "w", name="other")
    assert study_labels([a, d]) == ["synth", "other"]
    assert study_labels([a, b, d]) == [a.name, b.name, "other"]  # same study name
    assert study_labels([a, b, c]) == [a.name, str(b), str(c)]  # same folder name too
    r = build_reports([a, b])
    assert {p.study for p in r.points} == {a.name, b.name}


def test_load_results_of_several_studies(two: tuple[Path, Path]) -> None:
    a, b = two
    table = load_results([a, b])
    assert table.column_names[0] == "study" and table.num_rows == 12
    assert table.column("study").to_pylist() == ["alpha"] * 6 + ["beta"] * 6
    assert load_results(a).column_names == table.column_names[1:]  # one folder: as before


def test_concat_unifies_columns() -> None:
    t1 = pa.table({"study": ["a"], "swept.x": pa.array([1], pa.int64()), "only_a": [1.5]})
    t2 = pa.table({"study": ["b"], "swept.x": pa.array([2.5]), "swept.y": ["fast"]})
    t3 = pa.table({"study": ["c"], "swept.x": ["auto"], "swept.y": pa.array([None], pa.null())})
    assert _concat([t1, t2]).column("swept.x").to_pylist() == [1.0, 2.5]
    out = _concat([t1, t2, t3])
    assert out.column("swept.x").to_pylist() == ["1", "2.5", "auto"]  # int, float, text
    assert out.column("only_a").to_pylist() == [1.5, None, None]
    assert out.column("swept.y").to_pylist() == [None, "fast", None]


def test_cli_compare_csv_and_formats(
    two: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = map(str, two)
    res = invoke(capsys, monkeypatch, "report", a, b, "--format", "csv")
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert len(rows) == 4 and {x["study"] for x in rows} == {"alpha", "beta"}

    out = tmp_path / "cmp"
    res = invoke(capsys, monkeypatch, "report", a, b, "--format", "csv", "--out", str(out))
    assert res.code == 0 and f"wrote {out / 'report.csv'}" in res.out.replace("\n", "")
    assert (out / "report.csv").read_text() == as_csv(build_reports([two[0], two[1]]))
    assert (out / "throughput.png").is_file()

    res = invoke(capsys, monkeypatch, "report", a, b, "--format", "md", "--out", str(out))
    assert res.code == 0 and "| alpha | pytorch batch_size=1 |" in (out / "report.md").read_text()

    res = invoke(capsys, monkeypatch, "report", a, b)
    assert res.code == 0 and "alpha" in res.out and "beta" in res.out and "study" in res.out

    res = invoke(capsys, monkeypatch, "report", a, b, "--format", "json")
    data = json.loads(res.out)
    assert [p["study"] for p in data["points"]] == ["alpha", "alpha", "beta", "beta"]
    assert [s["study"] for s in data["studies"]] == ["alpha", "beta"]

    one = json.loads(invoke(capsys, monkeypatch, "report", a, "--format", "json").out)
    assert one["study_name"] == "alpha" and one["study_dir"] == a  # unchanged keys

    run_id = data["points"][3]["run_ids"][0]
    res = invoke(capsys, monkeypatch, "report", a, b, "--run", run_id, "--out", str(out))
    assert res.code == 0 and "figure power_timeline.png" in res.out


def test_cli_bad_input(
    two: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = map(str, two)
    res = invoke(capsys, monkeypatch, "report", a, b, "--format", "html")
    assert res.code == 2 and "needs a folder to write into" in res.err and "--out" in res.err
    res = invoke(capsys, monkeypatch, "report", a, a)
    assert res.code == 2 and "given twice" in res.err
    res = invoke(capsys, monkeypatch, "report", a, "--format", "xlsx")
    assert res.code == 2 and "xlsx" in res.err
    for name in ("table", "md", "html", "json", "csv"):
        assert name in res.err  # the choices are listed
    res = invoke(capsys, monkeypatch, "report", a, b, "--run", "nope")
    assert res.code == 2 and "run `nope` has no result.json" in res.err


def test_help_lists_the_formats(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the choices
    res = invoke(capsys, monkeypatch, "report", "--help")
    assert res.code == 0 and "table|md|html|json|csv" in res.out.replace(" ", "")
