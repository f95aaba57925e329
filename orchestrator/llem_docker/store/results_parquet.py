"""results.parquet: one row per run of a study, its columns versioned (docs/results.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llem_docker.store.layout import StudyDir
from llem_docker.store.serving_columns import SERVING_COLUMNS, serving_row
from llem_docker.store.study_result import StudyResult, StudyRun
from llem_harness.host_api import ExperimentConfig, ExperimentResult, RunRequest

# results.parquet's columns (docs/results.md); kept in the file's schema metadata.
# 1.1: the columns people filter on (precision, batch_size, GPU, image, harness) always present.
# 1.4: quantization, always present (none where the run was not quantized).
# 1.5: valid and invalid_rules, the run's validity verdict (result schema 1.9).
# 1.7: search and probe, a capacity search's probe (docs/capacity.md).
RESULTS_SCHEMA_VERSION = "1.7"
# What ran and on what, in every file whether swept or not; null where unknown (a run that
# did not complete has no environment snapshot; no GPU: gpu_count 0, the rest null).
_CONTEXT: list[tuple[str, Any]] = [
    ("model", pa.string()),
    ("precision", pa.string()),
    ("quantization", pa.string()),
    ("batch_size", pa.int64()),
    ("gpu_name", pa.string()),
    ("gpu_count", pa.int64()),
    ("power_limit_w", pa.float64()),
    ("image_digest", pa.string()),
    ("harness_version", pa.string()),
]
_METRICS: list[tuple[str, Any]] = [
    *_CONTEXT,
    ("duration_s", pa.float64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("throughput_tokens_per_s", pa.float64()),
    ("energy_total_j", pa.float64()),
    ("energy_adjusted_j", pa.float64()),
    ("energy_baseline_power_w", pa.float64()),
    ("energy_per_output_token_j", pa.float64()),
    ("energy_method", pa.string()),
    ("energy_unavailable_reason", pa.string()),
    ("co2_kg", pa.float64()),
    ("peak_memory_mb", pa.float64()),
    ("ttft_ms_mean", pa.float64()),
    ("itl_ms_mean", pa.float64()),
    # 1.2: phases, FLOPs, and the CPU's and DRAM's energy (result schema 1.4)
    ("prefill_energy_per_token_j", pa.float64()),
    ("decode_energy_per_token_j", pa.float64()),
    ("prefill_duration_s", pa.float64()),
    ("decode_duration_s", pa.float64()),
    ("flops_total", pa.float64()),
    ("achieved_tflops", pa.float64()),
    ("mfu", pa.float64()),
    ("energy_cpu_j", pa.float64()),
    ("energy_dram_j", pa.float64()),
    ("energy_per_output_token_all_j", pa.float64()),
    ("energy_per_response_j", pa.float64()),  # 1.3, with the responses' mean length
    ("response_tokens_mean", pa.float64()),
    *SERVING_COLUMNS,  # 1.3: the serving scenario (store/serving_columns.py)
    ("warnings", pa.int64()),
    ("valid", pa.bool_()),  # 1.5: the run's validity verdict (result schema 1.9), null: unknown
    ("invalid_rules", pa.string()),  # the rules it failed, comma-separated
    ("accuracy", pa.float64()),  # 1.6: quality on the window's responses (result schema 1.10)
    ("energy_per_correct_answer_j", pa.float64()),
    ("error_type", pa.string()),
    ("error_message", pa.string()),
]
_IDENTITY: list[tuple[str, Any]] = [
    ("run_id", pa.string()),
    ("index", pa.int64()),
    ("cycle", pa.int64()),
    ("backend", pa.string()),
    ("state", pa.string()),
    ("config_hash", pa.string()),
    ("search", pa.string()),  # 1.7
    ("probe", pa.int64()),
]


def _names(values: list[Any]) -> str | None:
    """The GPUs' model names, each once ("NVIDIA H200"); null when one is unknown."""
    if not values or None in values:
        return None
    return ", ".join(dict.fromkeys(str(v) for v in values))


def _context(
    res: ExperimentResult | None, config: ExperimentConfig | None, digest: str | None
) -> dict[str, Any]:
    config = res.config if res is not None else config
    row: dict[str, Any] = {"image_digest": digest}
    if config is not None:
        row |= {
            "precision": config.precision,
            "quantization": config.quantization,
            "batch_size": config.batch_size,
        }
    if res is None:
        return row
    env = res.environment
    return row | {
        "gpu_name": _names([g.name for g in env.gpus]),
        "gpu_count": env.gpu_count,
        "power_limit_w": env.power_limit_w(),
        "image_digest": res.runner.image_digest or env.image_digest or digest,
        "harness_version": env.harness_version,
    }


def _metrics(run: StudyRun, res: ExperimentResult | None, model: str) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model}
    if res is not None:
        row |= {
            "duration_s": res.duration_s,
            "input_tokens": res.tokens.input,
            "output_tokens": res.tokens.output,
            "throughput_tokens_per_s": res.throughput_tokens_per_s,
            "energy_total_j": res.energy.total_j,
            "energy_adjusted_j": res.energy.adjusted_j,
            "energy_baseline_power_w": res.energy.baseline_power_w,
            "energy_per_output_token_j": res.energy_per_output_token_j,
            "energy_method": res.energy.method,
            "energy_unavailable_reason": res.energy.unavailable_reason,
            "co2_kg": res.co2.kg,
            "peak_memory_mb": res.memory.peak_mb,
            "ttft_ms_mean": res.latency.ttft_ms.mean if res.latency.ttft_ms else None,
            "itl_ms_mean": res.latency.itl_ms.mean if res.latency.itl_ms else None,
            "warnings": len(res.warnings),
            "valid": res.validity.valid if res.validity else None,
            "invalid_rules": ", ".join(res.validity.failed) if res.validity else None,
            "accuracy": res.quality.accuracy if res.quality else None,
            "energy_per_correct_answer_j": res.energy_per_correct_answer_j,
            **_deeper(res),
            **serving_row(res),
        }
    if run.error is not None:
        row |= {"error_type": run.error.type, "error_message": run.error.message}
    return row


def _deeper(res: ExperimentResult) -> dict[str, Any]:
    """The phase, FLOPs and CPU columns; null where the result has no such figure (a result
    of schema < 1.4, or one that could not be measured)."""
    row: dict[str, Any] = {"energy_cpu_j": res.energy.cpu_j, "energy_dram_j": res.energy.dram_j}
    if res.phases is not None:
        pre, dec = res.phases.prefill, res.phases.decode
        row |= {
            "prefill_energy_per_token_j": pre.energy_per_token_j,
            "decode_energy_per_token_j": dec.energy_per_token_j,
            "prefill_duration_s": pre.duration_s,
            "decode_duration_s": dec.duration_s,
        }
    if res.flops is not None:
        row |= {
            "flops_total": res.flops.total,
            "achieved_tflops": res.flops.achieved_tflops,
            "mfu": res.flops.mfu,
        }
    if res.responses is not None:
        lengths = res.responses.output_tokens
        row |= {
            "energy_per_response_j": res.responses.energy_per_response_j,
            "response_tokens_mean": lengths.mean if lengths is not None else None,
        }
    parts = (res.energy.total_j, res.energy.cpu_j, res.energy.dram_j)
    if None not in parts and res.tokens.output:  # GPU + CPU packages + DRAM, all measured
        row["energy_per_output_token_all_j"] = sum(p for p in parts if p) / res.tokens.output
    return row


def _swept_column(values: list[Any]) -> tuple[Any, list[Any]]:
    """One pyarrow type per swept key; mixed or nested values become JSON strings."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds <= {bool}:
        return pa.bool_(), values
    if kinds <= {int}:
        return pa.int64(), values
    if kinds <= {int, float}:
        return pa.float64(), [None if v is None else float(v) for v in values]
    if kinds <= {str}:
        return pa.string(), values
    return pa.string(), [None if v is None else json.dumps(v, sort_keys=True) for v in values]


def read_configs(study_dir: Path, run_ids: Sequence[str]) -> dict[str, ExperimentConfig]:
    """The config of each run whose experiment.json can be read."""
    out: dict[str, ExperimentConfig] = {}
    for run_id in run_ids:
        path = StudyDir(study_dir).run(run_id).experiment
        try:
            out[run_id] = RunRequest.model_validate_json(path.read_text("utf-8")).config
        except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
            continue
    return out


def write_results_parquet(
    path: Path,
    study: StudyResult,
    results: dict[str, ExperimentResult],
    models: Mapping[str, str],
    swept_keys: Sequence[str],
    configs: Mapping[str, ExperimentConfig] | None = None,
) -> None:
    """One row per run: identity, a `swept.<key>` column per swept key, what ran on what,
    key metrics. `configs` (by run id) defaults to the runs' experiment.json files beside
    `path`, for the precision and batch size of runs that did not complete."""
    if configs is None:
        configs = read_configs(path.parent, [r.run_id for r in study.runs])
    rows = []
    for run in study.runs:
        res = results.get(run.run_id) if run.state == "completed" else None
        record = study.runners.get(run.backend)
        rows.append(
            {
                **{k: getattr(run, k) for k, _ in _IDENTITY},
                **_metrics(run, res, models[run.run_id]),
                **_context(res, configs.get(run.run_id), record.image_digest if record else None),
            }
        )
    fields = [pa.field(k, t) for k, t in _IDENTITY]
    columns: dict[str, list[Any]] = {k: [row.get(k) for row in rows] for k, _ in _IDENTITY}
    for key in swept_keys:
        typ, values = _swept_column([run.swept.get(key) for run in study.runs])
        fields.append(pa.field(f"swept.{key}", typ))
        columns[f"swept.{key}"] = values
    for k, t in _METRICS:
        fields.append(pa.field(k, t))
        columns[k] = [row.get(k) for row in rows]
    meta = {b"llem.results_schema_version": RESULTS_SCHEMA_VERSION.encode()}
    table = pa.table(columns, schema=pa.schema(fields, metadata=meta))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
