"""The same study, run inline and through the SLURM executor, leaves the same study.json and
results.parquet, field by field, apart from what is timed or measured (times, durations,
throughput, latencies) and what names the execution itself (study id, executor, jobs).
Both go through one builder (store/collect.py `assemble`), and this holds them to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.slurm.test_slurm_executor import cli, setup

# Keys whose values may differ between two executions of one study: clocks and durations,
# what is measured against them, and the execution's own identity.
VARIES = re.compile(
    r"(_at$|^created|^updated|^started|^ended|time|duration|_s$|_ms$|throughput|tok_s|"
    r"latency|ttft|itl|request_ms|study_id|study_dir|^executor$|submissions|^job$|owner_pid|"
    r"power_integral|achieved_tflops|mfu|per_tflop|mean|p50|p90|p99|^sd$|^cv$|ci_|half_width)"
)


def _study_dir(results: Path, before: set[Path]) -> Path:
    (new,) = set(results.iterdir()) - before
    return new


def _compare(a: Any, b: Any, where: str, diffs: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            diffs.append(f"{where}: keys {sorted(a.keys() ^ b.keys())}")
        for k in a.keys() & b.keys():
            if not VARIES.search(str(k)):
                _compare(a[k], b[k], f"{where}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{where}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _compare(x, y, f"{where}[{i}]", diffs)
    elif a != b:
        diffs.append(f"{where}: {a!r} != {b!r}")


def test_inline_and_slurm_leave_the_same_outputs(cluster: None, tmp_path: Path) -> None:
    study, env = setup(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    proc = cli(env, "run", str(study), "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inline = _study_dir(results, set())
    proc = cli(env, "run", str(study), "--executor", "slurm", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    slurm = _study_dir(results, {inline})

    one, two = (json.loads((d / "study.json").read_text()) for d in (inline, slurm))
    diffs: list[str] = []
    _compare(one, two, "study.json", diffs)
    assert diffs == []
    assert one["summary"]["completed"] == two["summary"]["completed"] == 2
    executors = [json.loads((d / "manifest.json").read_text())["executor"] for d in (inline, slurm)]
    assert executors == ["inline", "slurm"]

    a, b = (pq.read_table(d / "results.parquet") for d in (inline, slurm))
    assert a.schema.equals(b.schema, check_metadata=True)
    rows_a, rows_b = a.to_pylist(), b.to_pylist()
    _compare(rows_a, rows_b, "results.parquet", diffs)
    assert diffs == []
    for row_a, row_b in zip(rows_a, rows_b, strict=True):  # the measured figures are there
        for key in ("energy_per_output_token_j", "throughput_tokens_per_s"):
            assert (row_a.get(key) is None) == (row_b.get(key) is None), key
