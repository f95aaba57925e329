"""Issue acceptance, for real: a results folder from real runs of the tiny model (through the
library API), the report's statistics against a hand computation from the result.json files,
the figures that can be drawn without a GPU, and the HTML page that shows them."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import llem_docker
import llem_harness
from llem_docker import ExperimentConfig, ExperimentResult, StudyResult, load_results
from tests.conftest import TINY_STUDY

EXE = str(Path(sys.executable).with_name("llem-docker"))


def test_library_api_exports() -> None:
    assert set(llem_docker.__all__) >= {
        "run_experiment", "run_study", "ExperimentConfig", "StudyConfig", "ExperimentResult",
        "StudyResult", "load_results",
    }  # fmt: skip


def test_report_of_real_runs(tmp_path: Path) -> None:
    study = {**TINY_STUDY, "name": "report-real", "sweep": {"batch_size": [1, 4]},
             "execution": {"n_cycles": 3, "cycle_order": "interleaved"}}  # fmt: skip
    result = llem_docker.run_study(study, runner="local", results_dir=tmp_path, no_gaps=True)
    assert isinstance(result, StudyResult) and result.summary.completed == 6
    (study_dir,) = tmp_path.iterdir()
    table = load_results(study_dir)
    assert table.num_rows == 6 and "swept.batch_size" in table.column_names
    for row in table.to_pylist():  # the filter columns, from the real environment snapshot
        assert (row["precision"], row["batch_size"]) == ("fp32", row["swept.batch_size"])
        assert row["harness_version"] == llem_harness.__version__
        assert row["gpu_name"] is None and row["power_limit_w"] is None  # no GPU here
        assert row["image_digest"] is None  # the local runner has no image
        # this CPU machine has no NVIDIA library: the harness records 0 GPUs (not unknown)
        assert row["gpu_count"] == 0, row["energy_unavailable_reason"]

    proc = subprocess.run(
        [EXE, "report", str(study_dir), "--format", "json", "--out", str(tmp_path / "fig")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for point in report["points"]:  # by hand, from the result.json files
        tps = []
        for run_id in point["run_ids"]:
            res = ExperimentResult.model_validate_json(
                (study_dir / "runs" / run_id / "result.json").read_text()
            )
            assert res.config.batch_size == point["swept"]["batch_size"]
            tps.append(res.throughput_tokens_per_s)
        got = point["stats"]["throughput_tokens_per_s"]
        sd = statistics.stdev(tps)
        assert got["n"] == 3 and got["mean"] == pytest.approx(statistics.mean(tps))
        assert got["std"] == pytest.approx(sd)
        assert got["ci95"] == pytest.approx(4.302653 * sd / math.sqrt(3))  # t(0.975, 2)
        assert point["stats"]["energy_per_output_token_j"]["mean"] is None  # no GPU here
        assert point["energy_unavailable_reason"]
    assert set(report["figures"]) == {"throughput.png"}
    assert "no run measured energy" in report["figures_skipped"]["energy_per_token.png"]

    proc = subprocess.run([EXE, "report", str(study_dir), "--format", "html"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (study_dir / "report" / "report.html").read_text()
    png = study_dir / "report" / "throughput.png"
    assert "src='throughput.png'" in page and "energy_per_token.png not drawn" in page
    assert struct.unpack(">II", png.read_bytes()[16:24]) == (800, 500)
    assert "e+" not in page and "e-0" not in page  # no scientific notation in the cells

    # a second real study, compared with the first: a `study` column everywhere
    other = {**TINY_STUDY, "name": "report-real-b", "batch_size": 2,
             "execution": {"n_cycles": 2, "cycle_order": "interleaved"}}  # fmt: skip
    second = llem_docker.run_study(other, runner="local", results_dir=tmp_path / "b", no_gaps=True)
    assert second.summary.completed == 2
    (dir_b,) = (tmp_path / "b").iterdir()
    proc = subprocess.run([EXE, "report", str(study_dir), str(dir_b), "--format", "csv"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["study"], r["runs"]) for r in rows] == [
        ("report-real", "3"), ("report-real", "3"), ("report-real-b", "2"),
    ]  # fmt: skip
    assert rows[2]["energy_per_output_token_j_mean"] == ""  # not measured: empty, not 0
    assert rows[2]["energy_unavailable_reason"]
    out = tmp_path / "compare"
    proc = subprocess.run([EXE, "report", str(study_dir), str(dir_b), "--format", "md",
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "| study | point |" in md and "| report-real-b | pytorch | 2/2 |" in md
    assert (out / "throughput.png").is_file()
    both = load_results([study_dir, dir_b])
    assert both.num_rows == 8 and set(both.column("study").to_pylist()) == {
        "report-real", "report-real-b",
    }  # fmt: skip


def test_run_experiment(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate({**TINY_STUDY, "batch_size": 2})
    res = llem_docker.run_experiment(config, runner="local", results_dir=tmp_path)
    assert res.tokens.output == 4 * 16 and res.config.batch_size == 2
    with pytest.raises(llem_docker.api.RunFailed, match="did not complete"):
        llem_docker.run_experiment({**TINY_STUDY, "model": "llem/no-such-model"}, runner="local",
                                   results_dir=tmp_path)  # fmt: skip
