"""A real study through the apptainer runner: `llem-docker run` with
LLEM_RUNNER_PYTORCH=apptainer:<sif>, the `apptainer` stand-in on PATH (tests/standins: CI
cannot install Apptainer), and the real harness running the tiny model behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from llem_docker.execution.images import LABEL_FINGERPRINT, LABEL_HARNESS
from llem_harness import __version__
from llem_harness.contract import ExperimentResult, schema_fingerprint
from tests.conftest import TINY_STUDY
from tests.standins import install_apptainer, write_sif

SECRET = "hf_" + "ApptainerSecret00000000000000"
EXE = str(Path(sys.executable).with_name("llem-docker"))


def test_study_through_the_apptainer_runner(tmp_path: Path) -> None:
    bin_dir = install_apptainer(tmp_path / "bin")
    sif = write_sif(
        tmp_path / "llem-pytorch.sif",
        {LABEL_FINGERPRINT: schema_fingerprint(), LABEL_HARNESS: __version__},
    )
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**TINY_STUDY, "batch_size": 2}))
    record = tmp_path / "record.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LLEM_RUNNER_PYTORCH": f"apptainer:{sif}",
        "HF_TOKEN": SECRET,
        "LLEM_STANDIN_RECORD": str(record),
    }
    proc = subprocess.run(
        [EXE, "run", str(study), "--profile", "quick", "--results-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (study_dir,) = (tmp_path / "out").iterdir()
    (run_dir,) = (study_dir / "runs").iterdir()
    res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
    assert res.tokens.output == 4 * 16 and res.throughput_tokens_per_s > 0
    assert res.runner.type == "apptainer" and res.runner.image == str(sif)
    assert res.runner.image_digest and res.runner.image_digest.startswith("sha256:")
    summary = json.loads((study_dir / "study.json").read_text())
    assert summary["runners"]["pytorch"]["kind"] == "apptainer"
    (rec,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert rec["hf_token_in"] and SECRET not in " ".join(rec["argv"])
    assert rec["argv"][1:4] == ["exec", "--nv", "--cleanenv"]
    for path in study_dir.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            assert SECRET not in path.read_text(errors="replace"), path
