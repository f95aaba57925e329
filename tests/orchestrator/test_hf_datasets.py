"""`dataset: hf:<org>/<name>[:<split>]`, read from the local Hugging Face hub cache."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_docker.errors import ConfigError
from llem_docker.execution.hf_datasets import to_jsonl
from llem_harness.config import ExperimentConfig


def hub(tmp_path: Path) -> Path:
    """A hub cache as huggingface-cli leaves it: data files under a snapshot."""
    snap = tmp_path / "hub" / "datasets--acme--chats" / "snapshots" / "abc123" / "data"
    snap.mkdir(parents=True)
    rows = [{"conversations": [{"from": "human", "value": f"question {i}"}]} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), snap / "train-00000-of-00001.parquet")
    (snap / "test.jsonl").write_text(json.dumps({"instruction": "held out"}) + "\n")
    return tmp_path / "hub"


def test_a_cached_dataset_becomes_jsonl_prompts(tmp_path: Path) -> None:
    cache = hub(tmp_path)
    out = to_jsonl("hf:acme/chats", cache, 3, None)
    assert [json.loads(x)["prompt"] for x in out.read_text().splitlines()] == [
        "question 0", "question 1", "question 2",
    ]  # fmt: skip
    held = to_jsonl("hf:acme/chats:test", cache, 10, None)
    assert json.loads(held.read_text())["prompt"] == "held out"


def test_an_uncached_dataset_names_the_cache_and_the_download(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        to_jsonl("hf:acme/absent", hub(tmp_path), 3, "study.yaml")
    text = str(err.value) + str(err.value.fix)
    assert "not in the local Hugging Face cache" in text and str(tmp_path / "hub") in text
    assert "huggingface-cli download --repo-type dataset acme/absent" in text
    assert "HF_HOME" in text


def test_the_grammar_takes_hf_ids() -> None:
    assert ExperimentConfig(model="m", backend="pytorch", dataset="hf:acme/chats:train")
    with pytest.raises(ValueError, match="hf:<org>/<name>"):
        ExperimentConfig(model="m", backend="pytorch", dataset="hf:nothing")


def qa_hub(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    snap = tmp_path / "hub" / "datasets--acme--qa" / "snapshots" / "abc123" / "data"
    snap.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), snap / "train-00000-of-00001.parquet")
    return tmp_path / "hub"


def test_the_reference_column_quality_scores_against_travels_with_each_prompt(
    tmp_path: Path,
) -> None:
    rows = [{"question": f"{i}+1?", "answer": str(i + 1), "noise": "x"} for i in range(4)]
    out = to_jsonl("hf:acme/qa", qa_hub(tmp_path, rows), 3, None, ("answer",))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [{"prompt": f"{i}+1?", "answer": str(i + 1)} for i in range(3)]


def test_a_row_without_its_reference_is_refused_naming_the_column(tmp_path: Path) -> None:
    rows = [{"question": "1+1?", "answer": "2"}, {"question": "2+2?", "answer": None}]
    with pytest.raises(ConfigError) as err:
        to_jsonl("hf:acme/qa", qa_hub(tmp_path, rows), 2, "study.yaml", ("answer",))
    assert err.value.key == "quality.references" and "prompt 1" in str(err.value)
    assert "no `answer` column" in str(err.value)
