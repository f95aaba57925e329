"""Accuracy against J/token (report/quality.py): the Pareto frontier on means, the figure,
and the line under the table that names the frontier. The points here are made up; a real
study's are tests/integration/test_real_weights.py's (on a CPU there is no energy, so the
figure says why it is not drawn) and bench/README.md's GPU runs."""

from __future__ import annotations

import json
from pathlib import Path

from llem_docker.report.plots import draw
from llem_docker.report.points import METRICS, Point, Report, Study, _finish, note_rule
from llem_docker.report.quality import GATE_RULE, apply_gate, frontier, frontier_line, on_frontier
from llem_docker.report.serving import SERVING_METRICS
from llem_docker.report.table import main_parts
from llem_docker.report.validity import rule_rows
from llem_docker.store.layout import StudyDir


def test_the_frontier_keeps_the_points_no_other_beats_on_both_axes() -> None:
    xy = [(1.0, 0.5), (2.0, 0.9), (1.5, 0.4), (3.0, 0.9), (0.5, 0.2), (2.0, 0.9)]
    # (1.5, 0.4) loses to (1.0, 0.5); (3.0, 0.9) to (2.0, 0.9); the tied pair both stay
    assert frontier(xy) == [4, 0, 1, 5]
    assert frontier([(1.0, 0.5)]) == [0] and frontier([]) == []


def _point(quant: str, jpt: list[float], acc: list[float]) -> Point:
    p = Point(f"h-{quant}", "vllm", "llem/smollm2-135m-instruct", {"quantization": quant},
              runs=3, completed=3, study="q", run_valid=[True] * 3)  # fmt: skip
    values: dict[str, list[float | None]] = {m: [None] * 3 for m in (*METRICS, *SERVING_METRICS)}
    values |= {"energy_per_output_token_j": [*jpt], "accuracy": [*acc]}
    _finish(p, values, 0.05)
    return p


def _report(tmp_path: Path) -> Report:
    pts = [
        _point("none", [0.010, 0.011, 0.0105], [0.88, 0.88, 0.75]),
        _point("fp8", [0.007, 0.0072, 0.0071], [0.75, 0.88, 0.75]),
        _point("int8", [0.009, 0.0092, 0.0091], [0.50, 0.62, 0.50]),
    ]
    data = {"study_name": "q", "state": "completed", "design_hash": "0" * 16}
    return Report([Study("q", tmp_path, data)], pts, ["quantization"], 0.05)


def test_the_figure_is_drawn_and_the_table_names_the_frontier(tmp_path: Path) -> None:
    r = _report(tmp_path)
    assert [p.swept["quantization"] for p in on_frontier(r.points)] == ["fp8", "none"]
    figs = draw(r, tmp_path / "figs")
    assert (tmp_path / "figs" / "quality.png").stat().st_size > 10_000
    assert "quality.png" in figs.written
    line = frontier_line(r)
    assert line is not None and "vllm quantization=fp8; vllm quantization=none" in line
    assert line in main_parts(r)[1]


def test_without_energy_the_figure_says_why_and_no_frontier_is_named(tmp_path: Path) -> None:
    p = _point("none", [1.0, 1.0, 1.0], [0.75, 0.75, 0.75])
    values: dict[str, list[float | None]] = {m: [None] * 3 for m in (*METRICS, *SERVING_METRICS)}
    values["accuracy"] = [0.75, 0.88, 0.75]
    _finish(p, values, 0.05)
    p.energy_reason = "NVML unavailable"
    data = {"study_name": "q", "state": "completed", "design_hash": "0" * 16}
    r = Report([Study("q", tmp_path, data)], [p], ["quantization"], 0.05)
    figs = draw(r, tmp_path / "figs")
    assert "NVML unavailable" in figs.skipped["quality.png"] and frontier_line(r) is None


def _with_runs(tmp_path: Path, p: Point, quality: dict[str, object] | None) -> Point:
    """The point's run folders with a result.json holding the config's quality section."""
    p.study_dir = tmp_path
    p.run_ids = [f"{p.config_hash}-c{i}" for i in range(3)]
    for run_id in p.run_ids:
        result = StudyDir(tmp_path).run(run_id).result
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(json.dumps({"config": {"quality": quality}}))
    return p


def test_the_gate_holds_each_quantized_point_to_99_percent_of_its_reference(
    tmp_path: Path,
) -> None:
    q = {"metric": "contains", "reference": "none", "min_relative_accuracy": 0.99}
    r = _report(tmp_path)
    for p in r.points:
        _with_runs(tmp_path, p, q)
    apply_gate(r.points, note_rule)
    by = {p.swept["quantization"]: p for p in r.points}
    assert by["none"].relative_accuracy == 1.0 and by["none"].valid is True
    assert by["fp8"].relative_accuracy is not None and by["fp8"].relative_accuracy < 0.99
    assert GATE_RULE in by["fp8"].invalid_rules and by["fp8"].valid is False
    assert any("of quantization=none's < 99%" in f for f in by["int8"].flags)
    cols = {c.head: c.cells for c in main_parts(r)[0]}
    assert cols["accuracy vs reference"][0] == "100.0%"
    (row,) = [x for x in rule_rows(r) if x.rule == GATE_RULE]
    assert [row.shown(i) for i in range(3)] == ["✓", "✗", "✗"]


def test_a_lower_threshold_passes_and_no_reference_is_flagged_not_judged(
    tmp_path: Path,
) -> None:
    r = _report(tmp_path)
    for p in r.points:
        _with_runs(tmp_path, p, {"reference": "none", "min_relative_accuracy": 0.8})
    apply_gate(r.points, note_rule)
    by = {p.swept["quantization"]: p for p in r.points}
    assert by["fp8"].valid is True and GATE_RULE in by["int8"].invalid_rules
    lone = _with_runs(tmp_path, _point("fp8", [1.0] * 3, [0.5] * 3), {"reference": "bf16"})
    apply_gate([lone], note_rule)
    assert lone.relative_accuracy is None and not lone.invalid_rules
    assert any("no scored reference point (quantization=bf16)" in f for f in lone.flags)
    plain = _with_runs(tmp_path, _point("fp8", [1.0] * 3, [0.5] * 3), None)
    apply_gate([plain], note_rule)  # no quality section: no gate, and no flag
    assert plain.relative_accuracy is None and not plain.flags
