"""results.parquet always carries the columns people filter on (schema 1.1), swept or not,
null where unknown and never an invented 0."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from llem_docker.store.layout import RESULTS_FILE
from llem_docker.store.load import load_results
from llem_docker.store.results_parquet import (
    RESULTS_SCHEMA_VERSION,
    _context,
    write_results_parquet,
)
from llem_docker.store.study_result import StudyResult
from llem_harness.contract import ExperimentResult
from llem_harness.contract_env import Environment
from tests.orchestrator.test_report import make_study

CONTEXT = ["model", "precision", "batch_size", "gpu_name", "gpu_count", "power_limit_w",
           "image_digest", "harness_version"]  # fmt: skip
H200 = {"index": 0, "name": "NVIDIA H200", "power_limit_w": 700.0}
ENV = {"gpus": [H200, H200], "gpu_count": 2, "harness_version": "0.1.0",
       "image_digest": "sha256:feed"}  # fmt: skip


def test_columns_and_version(tmp_path: Path) -> None:
    study_dir = make_study(tmp_path, environment=ENV, failed=frozenset({2}))
    table = load_results(study_dir)
    assert set(CONTEXT) <= set(table.column_names)
    meta = pq.read_schema(study_dir / RESULTS_FILE).metadata
    assert meta[b"llem.results_schema_version"] == RESULTS_SCHEMA_VERSION.encode() == b"1.7"
    deeper = ["prefill_energy_per_token_j", "decode_energy_per_token_j", "mfu",
              "achieved_tflops", "energy_cpu_j", "energy_dram_j",
              "energy_per_output_token_all_j"]  # fmt: skip
    assert set(deeper) <= set(table.column_names)
    serving = ["scenario", "request_rate", "energy_per_request_j", "slo_attainment",
               "ttft_ms_p99", "loadgen_cpu_fraction"]  # fmt: skip
    assert set(serving) <= set(table.column_names)
    rows = table.to_pylist()
    # offline runs: the scenario is named, the serving figures are null
    assert {r["scenario"] for r in rows if r["state"] == "completed"} == {"offline"}
    assert all(r["energy_per_request_j"] is None for r in rows)
    done = [r for r in rows if r["state"] == "completed"]
    (failed,) = [r for r in rows if r["state"] == "failed"]
    assert len(done) == 5
    for r in done:
        assert (r["model"], r["precision"], r["batch_size"]) == (
            "llem/tiny-llama", "bf16", r["swept.batch_size"],
        )  # fmt: skip
        assert (r["gpu_name"], r["gpu_count"], r["power_limit_w"]) == ("NVIDIA H200", 2, 700.0)
        assert (r["image_digest"], r["harness_version"]) == ("sha256:feed", "0.1.0")
    # a failed run: its config is known (experiment.json), what it ran on is not
    assert (failed["precision"], failed["batch_size"]) == ("bf16", failed["swept.batch_size"])
    assert [failed[k] for k in CONTEXT[3:]] == [None] * 5


def test_not_swept_and_read_from_experiment_json(tmp_path: Path) -> None:
    """The orchestrator's own path passes no configs: they come from the run folders."""
    study_dir = make_study(tmp_path)
    study = StudyResult.model_validate_json((study_dir / "study.json").read_text())
    path = study_dir / RESULTS_FILE
    write_results_parquet(path, study, {}, {r.run_id: "m" for r in study.runs}, [])
    table = load_results(study_dir)
    assert "swept.batch_size" not in table.column_names
    assert table.column("batch_size").to_pylist() == [1, 4] * 3
    assert set(table.column("precision").to_pylist()) == {"bf16"}
    assert table.column("gpu_count").to_pylist() == [None] * 6  # no result: unknown


def test_gpu_facts_null_unless_measured(tmp_path: Path) -> None:
    study_dir = make_study(tmp_path)
    run = next((study_dir / "runs").iterdir())
    res = ExperimentResult.model_validate_json((run / "result.json").read_text())

    def context(env: dict[str, object]) -> dict[str, object]:
        update = {"environment": Environment.model_validate(env)}
        return _context(res.model_copy(update=update), None, None)

    # The harness says how many GPUs the run measured: 0 where there are none, null where it
    # could not tell (energy_backend: none never looked); the host reads the fields alone.
    why = "NVML unavailable: NVML Shared Library Not Found"
    cpu = context({"gpus": [], "gpu_count": 0, "gpu_unavailable_reason": why})
    assert (cpu["gpu_count"], cpu["gpu_name"], cpu["power_limit_w"]) == (0, None, None)
    off = context({"gpus": [], "gpu_unavailable_reason": "energy measurement disabled"})
    assert off["gpu_count"] is None
    a100 = {"index": 1, "name": "NVIDIA A100", "power_limit_w": 400.0}
    mixed = context({"gpus": [H200, a100], "gpu_count": 2})
    assert (mixed["gpu_name"], mixed["gpu_count"]) == ("NVIDIA H200, NVIDIA A100", 2)
    assert mixed["power_limit_w"] is None  # the GPUs differ: no single limit
    unknown = context({"gpus": [{"index": 0, "name": "NVIDIA H200"}], "gpu_count": 1})
    assert unknown["power_limit_w"] is None and unknown["gpu_count"] == 1
    # the digest the runner reported, else the snapshot's, else the study's runner record
    assert context({})["image_digest"] is None
    assert _context(None, None, "sha256:rec")["image_digest"] == "sha256:rec"


def test_the_phase_flops_and_cpu_columns_come_from_the_result(tmp_path: Path) -> None:
    """GPU-only beside GPU+CPU+DRAM J/token; the all-parts figure only where all three were
    measured; phases and FLOPs straight from result.json."""
    from llem_harness.contract import Energy, Flops, PhaseFigures, Phases

    study_dir = make_study(tmp_path, environment=ENV)
    study = StudyResult.model_validate_json((study_dir / "study.json").read_text())
    results = {}
    for run in study.runs:
        path = study_dir / "runs" / run.run_id / "result.json"
        res = ExperimentResult.model_validate_json(path.read_text())
        res.energy = Energy(total_j=100.0, cpu_j=30.0, dram_j=10.0 if run.index % 2 else None)
        res.phases = Phases(
            prefill=PhaseFigures(duration_s=1.0, tokens=10, energy_j=5.0, energy_per_token_j=0.5),
            decode=PhaseFigures(duration_s=2.0, tokens=20, energy_j=95.0, energy_per_token_j=4.75),
        )
        res.flops = Flops(total=1e12, achieved_tflops=0.5, mfu=0.001)
        results[run.run_id] = res
    out = tmp_path / "r.parquet"
    write_results_parquet(out, study, results, dict.fromkeys(results, "m"), ())
    for row in pq.read_table(out).to_pylist():
        res = results[row["run_id"]]
        assert (row["prefill_energy_per_token_j"], row["decode_energy_per_token_j"]) == (0.5, 4.75)
        assert (row["mfu"], row["achieved_tflops"], row["energy_cpu_j"]) == (0.001, 0.5, 30.0)
        if res.energy.dram_j is None:
            assert row["energy_per_output_token_all_j"] is None
        else:
            assert row["energy_per_output_token_all_j"] == 140.0 / res.tokens.output
