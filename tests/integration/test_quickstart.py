"""The README's main job, for real: quickstart through the CLI, the local runner and the harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from llem_harness.contract import ExperimentResult
from tests.conftest import REPO
from tests.integration.shape import study_shape

# The outputs' shape before the harness was split into engine and scenario packages (issue 29),
# made by `python tests/integration/shape.py <study dir>` on the quickstart run of that tree,
# then with the additions of result schema 1.9 and results schema 1.5 (validity, valid,
# invalid_rules), and of result schema 1.10 (validity.policy, window_repeats,
# warmup.pass_seconds, energy.baseline_cuda_context, engine_metrics, weights_file, quality,
# energy_per_correct_answer_j) and results schema 1.6 (accuracy,
# energy_per_correct_answer_j), the capacity search's fields, and study.json 1.2's
# thermal_gaps, and nothing else.
# A change that alters a column, a type or a key of study.json or result.json shows here;
# regenerate it only for a change of the result schema, with docs/exchange-contract.md.
SHAPE = REPO / "tests" / "integration" / "data" / "quickstart-shape.json"


def test_quickstart_runs_for_real(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("llem-docker")
    proc = subprocess.run(
        [
            str(exe),
            "run",
            str(REPO / "examples" / "quickstart.yaml"),
            "--runner",
            "local",
            "--profile",
            "quick",
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (study_dir,) = tmp_path.iterdir()
    study = json.loads((study_dir / "study.json").read_text())
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert study["state"] == manifest["state"] == "completed"
    assert study["summary"]["completed"] == 2 and study["summary"]["total_energy_j"] is None
    assert [r["state"] for r in manifest["runs"]] == ["completed", "completed"]
    for run in manifest["runs"]:
        run_dir = study_dir / "runs" / run["run_id"]
        res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
        assert res.tokens.output == res.config.n_prompts * res.config.max_output_tokens == 8 * 32
        assert res.throughput_tokens_per_s > 0
        assert res.energy.total_j is None and res.energy.unavailable_reason
        assert (run_dir / "container.log").read_text()
    table = pq.read_table(study_dir / "results.parquet")
    assert table.num_rows == 2
    # sub-second windows on a CPU: the window rule fails, the power rules cannot be judged
    assert table.column("valid").to_pylist() == [False, False]
    # (a CPU's sub-second passes may also leave the warmup unsettled)
    assert all(r.startswith("window_length") for r in table.column("invalid_rules").to_pylist())
    # the same verdicts from the stored files, without rerunning
    verdicts = tmp_path / "verdicts.json"
    again = subprocess.run(
        [str(exe), "validate", str(study_dir), "--json", str(verdicts)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "runs valid: 0, invalid: 2" in again.stdout
    stored = json.loads(verdicts.read_text())
    failed = [", ".join(v["failed"]) for v in stored.values()]
    assert failed == table.column("invalid_rules").to_pylist()
    assert study_shape(study_dir) == json.loads(SHAPE.read_text())
