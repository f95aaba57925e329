"""`quantization:` for real in a container: the pytorch image's torchao and bitsandbytes
quantize the tiny model on the CPU through the Docker runner, one run per method, and
results.parquet carries the axis. The methods that need a GPU (fp8) are refused by the dry
run on this host (tests/harness/test_quantization.py); their H200 figures are in bench/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem_harness.contract import ExperimentResult
from tests.docker.conftest import cli_env, manifest, run_cli, study_dir, tiny_study, user_config
from tests.docker.conftest import write_study as write

pytestmark = [pytest.mark.docker, pytest.mark.slow]
FORMATS = {"none": None, "int8": "Int8Tensor", "bnb-nf4": "Params4bit", "bnb-int8": "Int8Params"}


def test_online_methods_run_in_the_pytorch_image(tmp_path: Path, test_image: str) -> None:
    study = tiny_study("quant", precision="bf16", sweep={"quantization": list(FORMATS)})
    path = write(tmp_path / "quant.yaml", study)
    proc = run_cli(["run", str(path)], cli_env(user_config(tmp_path)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = study_dir(tmp_path / "results")
    seen = {}
    for run in manifest(out)["runs"]:
        res = ExperimentResult.model_validate_json(
            (out / "runs" / run["run_id"] / "result.json").read_text()
        )
        q = res.backend_details["quantization"]
        method = res.config.quantization
        seen[method] = None if q is None else q["weight_format"].split(" ")[0]
        if q is not None:
            assert q["layers_quantized"] == 14 and q["library"].split()[0] in (
                "torchao",
                "bitsandbytes",
            )
        assert res.tokens.output == 4 * 8
    assert seen == FORMATS
    table = pq.read_table(out / "results.parquet").to_pydict()
    assert sorted(table["quantization"]) == sorted(FORMATS)
