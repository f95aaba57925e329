"""A capacity search for real, through the CLI and the local runner, against the stand-in API
server with load-dependent latency (tests/standins/vllm_server, LLEM_STANDIN_SLOTS): 4 slots,
each response 5 tokens of 20 ms, so the server serves at most 4 / 0.1 s = 40 requests/s and
the true capacity is known in advance. The search must find it within its tolerance; then a
search stopped with Ctrl+C part-way is finished by `--resume`, which keeps the probes that
completed and replays their verdicts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

EXE = str(Path(sys.executable).with_name("llem-docker"))
STANDIN = REPO / "tests" / "standins" / "vllm_server"
CAPACITY = 40.0  # requests/s: LLEM_STANDIN_SLOTS / (max_output_tokens x LLEM_STANDIN_TOKEN_S)
TOLERANCE = 0.1
STUDY = f"""name: capacity-standin
model: llem/tiny-llama
backend: vllm
scenario: serving
weights: dummy
dataset: synthetic
n_prompts: 16
max_input_tokens: 16
max_output_tokens: 5
warmup_runs: 0
serving:
  arrival: constant
  duration_s: 3
  slo: {{ttft_ms: 60}}
  search: {{rate: [10, 80], attainment: 0.9, tolerance: {TOLERANCE}}}
execution: {{n_cycles: 1}}
"""


def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "llem.yaml"
    config.write_text(
        "execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\n"
        "measurement: {baseline_seconds: 0}\n"
    )
    path = os.pathsep.join([str(STANDIN), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "LLEM_CONFIG": str(config),
        "PYTHONPATH": path,
        "LLEM_STANDIN_SLOTS": "4",
        "LLEM_STANDIN_TOKEN_S": "0.02",
    }


def command(tmp_path: Path, *extra: str) -> list[str]:
    study = tmp_path / "capacity.yaml"
    study.write_text(STUDY)
    results = str(tmp_path / "results")
    return [EXE, "run", str(study), "--runner", "local", "--results-dir", results, "--yes", *extra]


def search_of(study_dir: Path) -> dict[str, object]:
    (search,) = json.loads((study_dir / "study.json").read_text())["searches"]
    assert isinstance(search, dict)
    return search


def test_the_search_finds_the_known_capacity_within_its_tolerance(tmp_path: Path) -> None:
    proc = subprocess.run(
        command(tmp_path), env=env(tmp_path), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = (tmp_path / "results").iterdir()
    s = search_of(study_dir)
    assert s["state"] == "completed" and s["status"] == "converged", s
    capacity, failed = float(s["capacity_rps"]), float(s["failed_rps"])  # type: ignore[arg-type]
    assert CAPACITY / (1 + TOLERANCE) <= capacity <= CAPACITY * (1 + TOLERANCE), s
    assert failed / capacity <= 1 + TOLERANCE
    probes = s["probes"]
    assert isinstance(probes, list) and 2 <= len(probes) <= 7  # at most 7: the dry run's count
    assert probes[0]["request_rate"] == 10 and probes[0]["passed"] is True
    for p in probes:  # every probe is an ordinary run, with its own folder and figures
        assert (study_dir / "runs" / p["run_id"] / "result.json").is_file()
        assert p["state"] == "completed" and p["attainment"]["ttft_ms"] is not None
    assert "capacity" in proc.stdout and "meets the SLO" in proc.stdout
    # no GPU here: the energy at the capacity is null, with the reason
    assert s["energy_per_request_j"] is None and s["unavailable_reason"]
    table = pq.read_table(study_dir / "results.parquet").to_pydict()
    assert table["probe"] == list(range(1, len(probes) + 1))
    assert table["swept.serving.request_rate"] == [p["request_rate"] for p in probes]
    report = subprocess.run(
        [EXE, "report", str(study_dir)], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr
    assert "Capacity" in report.stdout and f"{capacity:g}" in report.stdout


def test_a_search_stopped_part_way_is_finished_by_resume(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        command(tmp_path), env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    manifest: dict[str, object] = {}
    while time.monotonic() < deadline and proc.poll() is None:  # stop it in its third probe
        found = list((tmp_path / "results").glob("*/manifest.json"))
        if found:
            manifest = json.loads(found[0].read_text())
            runs = manifest["runs"]
            assert isinstance(runs, list)
            if len(runs) == 3 and runs[-1]["state"] == "running":
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"the search never reached its third probe: {manifest}")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    (study_dir,) = (tmp_path / "results").iterdir()
    before = json.loads((study_dir / "manifest.json").read_text())
    assert before["searches"][0]["state"] == "interrupted"
    kept = {r["run_id"]: r["request_rate"] for r in before["runs"] if r["state"] == "completed"}
    assert len(kept) == 2
    stamps = {k: (study_dir / "runs" / k / "result.json").stat().st_mtime_ns for k in kept}
    done = subprocess.run(
        command(tmp_path, "--resume", str(study_dir)),
        env=env(tmp_path), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    s = search_of(study_dir)
    assert s["state"] == "completed" and s["status"] == "converged"
    probes = s["probes"]
    assert isinstance(probes, list)
    for run_id, rate in kept.items():  # untouched, and their verdicts replayed
        assert (study_dir / "runs" / run_id / "result.json").stat().st_mtime_ns == stamps[run_id]
        assert any(p["run_id"] == run_id and p["request_rate"] == rate for p in probes)
    assert [p["probe"] for p in probes] == list(range(1, len(probes) + 1))
    capacity = float(s["capacity_rps"])  # type: ignore[arg-type]
    assert CAPACITY / (1 + TOLERANCE) <= capacity <= CAPACITY * (1 + TOLERANCE), s
