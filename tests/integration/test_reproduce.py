"""A reviewer's round trip for real, on the quickstart through the local runner: pack the
study, reproduce it from the pack on this machine, compare the two; and a rerun with another
batch size judged different. The verdict logic's known cases are
tests/orchestrator/test_equivalence.py's; the Docker runner's round trip is
tests/docker/test_reproduce.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

EXE = Path(sys.executable).with_name("llem-docker")


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "llem.yaml"
    if not config.exists():
        config.write_text(
            "measurement: {baseline_seconds: 0}\n"
            "execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\n"
        )
    env = {**os.environ, "LLEM_CONFIG": str(config), "COLUMNS": "200"}
    proc = subprocess.run([str(EXE), *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    assert proc.returncode == 0, f"{args}: " + proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def one_study(folder: Path) -> Path:
    (study,) = [p for p in folder.iterdir() if p.is_dir() and (p / "manifest.json").is_file()]
    return study


def test_pack_reproduce_compare_on_the_quickstart(tmp_path: Path) -> None:
    quickstart = str(REPO / "examples" / "quickstart.yaml")
    cli(tmp_path, "run", quickstart, "--runner", "local", "--cycles", "3", "--order",
        "interleaved", "--results-dir", str(tmp_path / "a"))  # fmt: skip
    a = one_study(tmp_path / "a")
    assert (a / "study.yaml").read_text() == Path(quickstart).read_text()
    cli(tmp_path, "pack", str(a), "--out", str(tmp_path / "q.tar.gz"))
    run = cli(tmp_path, "reproduce", str(tmp_path / "q.tar.gz"), "--runner", "local",
              "--results-dir", str(tmp_path / "b"))  # fmt: skip
    assert "environment, the original's against this machine's" in run.stdout
    b = one_study(tmp_path / "b")
    record = json.loads((b / "reproduce.json").read_text())
    assert record["original"]["study_id"] == a.name and record["original"]["pack_sha256"]
    original = b / "original" / a.name
    mine, theirs = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert [r["run_id"] for r in theirs["runs"]] == [r["run_id"] for r in mine["runs"]]
    assert (original / "manifest.json").is_file()  # the pack's copy, kept beside the rerun
    out = cli(tmp_path, "compare", str(a), str(b), "--margin", "60%", "--metric",
              "throughput_tokens_per_s", "--format", "json").stdout  # fmt: skip
    data = json.loads(out)
    verdicts = {c["verdict"] for p in data["points"] for c in p["comparisons"]}
    # the same study, rerun on the same noisy 2-core machine: never judged different here
    assert verdicts <= {"equivalent", "inconclusive"}, out
    assert len(data["points"]) == 2 and not data["only_a"] and not data["only_b"]


def test_a_rerun_with_another_batch_size_is_judged_different(tmp_path: Path) -> None:
    base = (REPO / "examples" / "quickstart.yaml").read_text()
    for name, batch in (("one", 1), ("sixteen", 16)):
        study = tmp_path / f"{name}.yaml"
        study.write_text(base.replace("n_prompts: 8", "n_prompts: 16")
                         .replace("batch_size: [1, 4]", f"batch_size: [{batch}]"))  # fmt: skip
        cli(tmp_path, "run", str(study), "--runner", "local", "--cycles", "3",
            "--results-dir", str(tmp_path / name))  # fmt: skip
    a, b = one_study(tmp_path / "one"), one_study(tmp_path / "sixteen")
    out = cli(tmp_path, "compare", str(a), str(b), "--ignore", "batch_size", "--margin",
              "20%", "--metric", "throughput_tokens_per_s", "--format", "json").stdout  # fmt: skip
    (pair,) = json.loads(out)["points"]
    (result,) = pair["comparisons"]
    assert result["verdict"] == "different" and result["rel_diff"] > 1.0, out
