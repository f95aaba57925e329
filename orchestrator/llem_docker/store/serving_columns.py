"""results.parquet's serving columns (results schema 1.3): one row's serving figures.

Null for offline runs and for results that have no `serving` block. `request_rate` is the
requested rate in requests/s (`inf` for every request at once, a float infinity here).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from llem_harness.host_api import ExperimentResult, Stats

SERVING_COLUMNS: list[tuple[str, Any]] = [
    ("scenario", pa.string()),
    ("request_rate", pa.float64()),
    ("achieved_rate", pa.float64()),
    ("max_concurrency", pa.int64()),
    ("requests_completed", pa.int64()),
    ("requests_failed", pa.int64()),
    ("energy_per_request_j", pa.float64()),
    ("serving_energy_per_output_token_j", pa.float64()),
    ("energy_per_request_whole_j", pa.float64()),
    ("slo_ttft_ms", pa.float64()),
    ("slo_tpot_ms", pa.float64()),
    ("goodput_rps", pa.float64()),
    ("slo_attainment", pa.float64()),
    ("ttft_ms_p50", pa.float64()),
    ("ttft_ms_p99", pa.float64()),
    ("tpot_ms_p50", pa.float64()),
    ("tpot_ms_p99", pa.float64()),
    ("e2e_ms_p50", pa.float64()),
    ("e2e_ms_p99", pa.float64()),
    ("loadgen_cpu_fraction", pa.float64()),
]


def _pct(stats: Stats | None, name: str) -> float | None:
    return None if stats is None else float(getattr(stats, name))


def serving_row(res: ExperimentResult) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": res.config.scenario}
    s = res.serving
    if s is None:
        return row
    rate = float("inf") if s.request_rate == "inf" else float(s.request_rate)
    return row | {
        "request_rate": rate,
        "achieved_rate": s.achieved_rate,
        "max_concurrency": s.max_concurrency,
        "requests_completed": s.completed,
        "requests_failed": s.failed,
        "energy_per_request_j": s.energy_per_request_j,
        "serving_energy_per_output_token_j": s.energy_per_output_token_j,
        "energy_per_request_whole_j": s.whole.energy_per_request_j,
        "slo_ttft_ms": s.slo.get("ttft_ms"),
        "slo_tpot_ms": s.slo.get("tpot_ms"),
        "goodput_rps": s.goodput_rps,
        "slo_attainment": s.slo_attainment,
        "ttft_ms_p50": _pct(s.ttft_ms, "p50"),
        "ttft_ms_p99": _pct(s.ttft_ms, "p99"),
        "tpot_ms_p50": _pct(s.tpot_ms, "p50"),
        "tpot_ms_p99": _pct(s.tpot_ms, "p99"),
        "e2e_ms_p50": _pct(s.e2e_ms, "p50"),
        "e2e_ms_p99": _pct(s.e2e_ms, "p99"),
        "loadgen_cpu_fraction": s.load_generator.cpu_fraction,
    }
