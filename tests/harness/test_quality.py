"""Answer quality (llem_harness.quality): the metrics, the interval, the references, and the
config's refusals. The real model's scores are tests/integration/test_real_weights.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_harness.config import ExperimentConfig
from llem_harness.quality import (
    QualityConfig,
    is_correct,
    normalise,
    references,
    run_quality,
    wilson,
)


def test_squad_normalisation_and_the_three_metrics() -> None:
    assert normalise("  The Capital, of France!  ") == "capital of france"
    assert is_correct("exact_match", "Paris.", "paris")
    assert not is_correct("exact_match", "It is Paris.", "Paris")
    assert is_correct("contains", "The capital of France is Paris.", "Paris")
    assert not is_correct("contains", "Parisian food", "Paris")  # whole words only
    assert is_correct("number", "2 + 3 = 5", "5")  # the last number said: the answer
    assert not is_correct("number", "2 + 3 = 5", "2")
    assert is_correct("number", "It is 8.0", "8") and not is_correct("number", "eight", "8")


def test_wilson_stays_within_0_and_1() -> None:
    assert wilson(0, 8)[0] == 0.0 and wilson(8, 8)[1] == 1.0
    low, high = wilson(6, 8)
    assert low == pytest.approx(0.4093, abs=1e-4) and high == pytest.approx(0.9285, abs=1e-4)


def test_references_cycle_with_the_prompts_and_a_missing_one_is_named(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b", "answer": 2}\n')
    assert references(data, "answer", 5) == ["1", "2", "1", "2", "1"]
    data.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b"}\n')
    with pytest.raises(ValueError, match=r"line 2: no `answer` reference"):
        references(data, "answer", 2)


def test_random_weights_or_no_text_give_null_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"prompt": "a", "answer": "x"}) + "\n")
    cfg = QualityConfig(metric="exact_match")
    q, _, marks = run_quality(cfg, "dummy", ["x"], data, 1)
    assert q is not None and q.accuracy is None and "random weights" in (q.unavailable_reason or "")
    q, _, marks = run_quality(cfg, "pretrained", [], data, 1)
    assert q is not None and marks is None and "no text" in (q.unavailable_reason or "")
    q, _, marks = run_quality(cfg, "pretrained", ["X.", "y"], data, 1)
    assert q is not None and (q.n, q.correct, marks) == (2, 1, [True, False])
    assert run_quality(None, "pretrained", ["x"], data, 1)[0] is None


def test_responses_of_repeated_passes_answer_the_study_prompts_not_the_whole_dataset(
    tmp_path: Path,
) -> None:
    """A window of two passes over the first 2 of 3 records: response 2 answers prompt 0
    again (not record 2), as does a serving load's request 2."""
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "answer": p}) + "\n" for p in "xyz"))
    q, _, marks = run_quality(QualityConfig(), "pretrained", ["x", "y", "x", "y"], data, 2)
    assert q is not None and marks == [True, True, True, True] and q.accuracy == 1.0
    assert (q.n, q.questions) == (4, 2)  # the interval is on 2 questions, not 4 answers
    assert q.ci_low == pytest.approx(wilson(2, 2)[0]) and q.ci_low < wilson(4, 4)[0]
    q, _, marks = run_quality(QualityConfig(), "pretrained", ["x", "y", "z", "z"], data, 4)
    assert marks == [True, True, True, False]  # 4 prompts of 3 records: the 4th asks `x`
    assert q is not None and (q.n, q.questions) == (4, 3)  # 3 distinct questions, not 4


def test_the_config_needs_a_dataset_with_references_and_a_known_metric() -> None:
    base = {"model": "llem/tiny-llama", "backend": "pytorch", "dataset": "qa.jsonl"}
    assert ExperimentConfig.model_validate(base | {"quality": {"metric": "contains"}}).quality
    with pytest.raises(ValidationError, match="quality needs references"):
        ExperimentConfig.model_validate(base | {"dataset": "builtin", "quality": {}})
    with pytest.raises(ValidationError, match=r"quality\.metric"):
        ExperimentConfig.model_validate(base | {"quality": {"metric": "bleu"}})
