"""The report in a terminal (report/terminal.py, report/table.py) on quickstart-like points
(a CPU: no energy, no MFU; 3 cycles with warnings): the columns no point has are left out with
their reason given once, the table fits 80 and 120 columns without breaking a word, and the
warnings flag names the warnings it counts (report/notes.py)."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from llem_docker.report.notes import UNNAMED, read_run, warning_flag, warning_name
from llem_docker.report.points import METRICS, Point, Report, Study, _finish, build_report
from llem_docker.report.render import markdown
from llem_docker.report.serving import SERVING_METRICS
from llem_docker.report.stats import summarize
from llem_docker.report.table import main_parts
from llem_docker.report.terminal import print_table
from llem_docker.store.layout import StudyDir
from llem_harness.contract import Warmup
from llem_harness.energy.timeseries import window_warnings
from llem_harness.warmup import unsettled_warning

NVML = "NVML unavailable: NVML Shared Library Not Found"
NO_PEAK = "no GPU: its peak FLOPs are unknown"
ENERGY_HEADS = ("J/token (J)", "J/response", "J/prefill token", "energy (J)", "CO2 (kg)")


def _point(batch: int, tps: list[float], ttft: list[float]) -> Point:
    p = Point(f"h{batch}", "pytorch", "llem/tiny-llama", {"batch_size": batch}, runs=3,
              completed=3, with_warnings=3, study="quickstart", run_valid=[None] * 3)  # fmt: skip
    values: dict[str, list[float | None]] = {m: [None] * 3 for m in (*METRICS, *SERVING_METRICS)}
    values |= {"throughput_tokens_per_s": [*tps], "ttft_ms_mean": [*ttft]}
    values["response_tokens_mean"] = [32.0] * 3
    p.warnings = Counter({"short window": 3, "warmup unsettled": 3})
    p.energy_reason = NVML
    p.reasons = {m: NVML for m in METRICS if "energy" in m or m == "co2_kg"} | {"mfu": NO_PEAK}
    _finish(p, values, 0.05)
    return p


def quickstart_like(tmp_path: Path) -> Report:
    data = {"study_name": "quickstart", "state": "completed", "design_hash": "abcdef1234567890"}
    pts = [_point(1, [164.0, 651.0, 1394.0], [20.1, 25.3, 19.0]),
           _point(4, [402.0, 433.0, 418.0], [40.2, 45.1, 41.3])]  # fmt: skip
    return Report([Study("quickstart", tmp_path, data)], pts, ["batch_size"], 0.05)


def render(r: Report, width: int) -> str:
    buf = io.StringIO()
    print_table(Console(width=width, file=buf, color_system=None, soft_wrap=False), r)
    return buf.getvalue()


def _tokens(text: str) -> set[str]:
    return set(re.split(r"[\s│┃]+", text))


@pytest.mark.parametrize("width", [80, 120])
def test_the_table_fits_the_terminal_without_breaking_a_word(tmp_path: Path, width: int) -> None:
    r = quickstart_like(tmp_path)
    out = render(r, width)
    assert max(len(line) for line in out.splitlines()) <= width
    cols, _ = main_parts(r, full=False)
    tokens = _tokens(out)
    for c in cols:  # every word of every header and cell is whole on some line
        for text in (c.head, *c.cells):
            assert set(text.split()) <= tokens, (c.head, text)
    assert "736 [36, 7844]" in out  # a figure's cell is never wrapped
    split = "(1/2)" in out
    assert split == (width == 80)  # at 80 columns two tables, each naming the point
    assert out.count("batch_size=4") == (2 if split else 1)
    titles = [f"quickstart: completed, design abcdef123456, 2 points ({k}/2)" for k in (1, 2)]
    for title in titles if split else []:  # a title wraps at the terminal, not its narrow table
        assert f"{title}\n" in out


def test_a_narrow_terminal_gets_one_block_per_point(tmp_path: Path) -> None:
    out = render(quickstart_like(tmp_path), 36)
    assert max(len(line) for line in out.splitlines()) <= 36
    assert "pytorch batch_size=1\n" in out and "  tokens/s (tok/s): 736 [36, 7844]\n" in out


def test_empty_columns_are_left_out_with_their_reason_once(tmp_path: Path) -> None:
    r = quickstart_like(tmp_path)
    out = render(r, 120)
    table = out.split("Each cell is")[0]
    for head in (*ENERGY_HEADS, "MFU"):
        assert head not in table
    assert "n/a" not in table
    flat = " ".join(out.split())
    assert flat.count(NVML) == 1 and flat.count(NO_PEAK) == 1
    assert (
        "not shown, no point has a value: J/token, J/token GPU+CPU+DRAM, J/response, "
        f"J/prefill token, J/decode token, energy, CO2: {NVML}"
    ) in flat
    assert "energy not measured:" not in flat  # said once, above
    md = markdown(r, None)
    assert "J/token (J)" not in md.split("\n\n- ")[0] and md.count(NVML) == 1
    assert "| point | runs | validity | tokens/response (tokens) | tokens/s (tok/s) |" in md


def test_a_column_some_point_has_is_kept(tmp_path: Path) -> None:
    r = quickstart_like(tmp_path)
    measured = r.points[1]  # as if batch 4 had run on a GPU
    measured.stats["energy_per_output_token_j"] = summarize([0.010, 0.012, 0.011])
    measured.energy_reason = None
    out = render(r, 200)
    assert "J/token (J)" in out and "n/a" in out  # batch 1 has none: n/a, said why below
    assert f"energy not measured: pytorch: {NVML}" in out


def test_the_warnings_flag_names_the_warnings(tmp_path: Path) -> None:
    r = quickstart_like(tmp_path)
    assert "warnings: short window ×3, warmup unsettled ×3" in r.points[1].flags
    assert not any("runs with warnings" in f for p in r.points for f in p.flags)
    short = window_warnings(4.0, 1.0, 0)[0]  # the harness's own texts
    unsettled = unsettled_warning(Warmup(runs=4, converged=False, final_cv=0.2, threshold=0.05,
                                         throughputs=[1.0] * 4), 4)  # fmt: skip
    assert unsettled is not None
    assert [warning_name(short), warning_name(unsettled)] == ["short window", "warmup unsettled"]
    assert warning_name("3 of 80 requests failed: timeout") == "failed requests"
    assert warning_name("something new: 12 things (x)") == "something new"
    assert warning_flag(Counter({"warmup unsettled": 1, "short window": 3})) == (
        "warnings: short window ×3, warmup unsettled ×1"
    )
    assert warning_flag(Counter()) is None


def test_warnings_and_reasons_are_read_from_result_json(tmp_path: Path) -> None:
    from tests.orchestrator.test_report import make_study

    study_dir = make_study(tmp_path)
    r = build_report(study_dir)
    big = r.points[1]
    notes = read_run(StudyDir(study_dir).run(big.run_ids[0]).result)
    assert notes is not None and notes.warnings == ["short window"]
    assert notes.reasons["mfu"].startswith("result.json has no `flops` block")
    result = StudyDir(study_dir).run(big.run_ids[0]).result
    result.write_text(json.dumps([]))  # unreadable as a result
    assert read_run(result) is None
    again = build_report(study_dir).points[1]
    assert again.warnings == {"short window": 2, UNNAMED: 1}
