"""`run --strict` and the profile's validity thresholds, through the CLI with the real harness
on the CPU (the local runner, the tiny model): what a user of `--profile publication` gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.cli.validate import STRICT_EXIT, strict_code
from llem_docker.report.points import build_report
from tests.orchestrator.cliutil import invoke

TINY = """\
name: strict
model: llem/tiny-llama
weights: dummy
backend: pytorch
precision: fp32
n_prompts: 4
batch_size: 2
max_input_tokens: 16
max_output_tokens: 8
warmup_runs: 1
warmup_max_runs: 2
"""


def test_strict_exits_3_on_an_invalid_point_after_writing_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "strict.yaml"
    study.write_text(TINY)
    config = tmp_path / "llem.yaml"
    config.write_text("measurement: {baseline_seconds: 0}\n")
    monkeypatch.setenv("LLEM_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    args = ("run", str(study), "--runner", "local", "--profile", "quick", "--cycles", "1")
    r = invoke(capsys, monkeypatch, *args, "--results-dir", str(tmp_path / "r"), "--strict")
    assert r.code == STRICT_EXIT, r.err
    (folder,) = (tmp_path / "r").iterdir()
    (run,) = (folder / "runs").iterdir()
    assert (run / "result.json").is_file() and (folder / "results.parquet").is_file()
    assert "--strict: 1 invalid point(s)" in r.err and "window_length" in r.err  # a CPU blink
    # the profile's thresholds went to the harness and came back with the verdict
    request = json.loads((run / "experiment.json").read_text())
    result = json.loads((run / "result.json").read_text())
    assert request["validity"]["profile"] == "quick" and request["validity"]["min_cycles"] == 1
    assert result["validity"]["policy"] == request["validity"]
    assert json.loads((folder / "manifest.json").read_text())["validity"]["profile"] == "quick"
    assert strict_code(folder, quiet=True) == STRICT_EXIT
    assert [p.valid for p in build_report(folder).points] == [False]
    # The point is judged by its study's profile: under a minimum of 2 cycles, one is too few.
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["validity"]["min_cycles"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (point,) = build_report(folder).points
    assert "min_cycles" in point.invalid_rules and "1 cycle(s) < 2 (quick profile)" in point.flags
    # ... and `report --validity` shows it: rules × points, the fix for each failure.
    monkeypatch.setenv("COLUMNS", "80")
    r = invoke(capsys, monkeypatch, "report", str(folder), "--validity")
    assert r.code == 0, r.err
    assert "window_length" in r.out and "1 ✗" in r.out and "P1: pytorch" in r.out
    assert "to fix" in r.out and "more prompts or longer outputs" in r.out
    assert "min_cycles" in r.out and "more cycles" in r.out
    fixes = r.out.split("to fix\n")[1].split("unknown:")[0].splitlines()
    assert len(fixes) > 2 and all(line.startswith("  ") for line in fixes)  # wrapped: indented
    monkeypatch.delenv("COLUMNS")
    r = invoke(capsys, monkeypatch, "report", str(folder), "--validity", "--format", "json")
    rows = {row["rule"]: row for row in json.loads(r.out)}
    assert rows["window_length"]["points"][0]["fail"] == 1 and rows["window_length"]["fix"]
    assert rows["cycle_cv"]["fix"] is None and rows["cycle_cv"]["points"][0] == {
        "point": "pytorch",
        "config_hash": rows["cycle_cv"]["points"][0]["config_hash"],
        "pass": 1,
    }  # a rule that passed: counted, and no fix
    r = invoke(capsys, monkeypatch, "report", str(folder), "--validity", "--format", "csv")
    assert r.code == 2 and "--validity has no --format csv" in r.err
