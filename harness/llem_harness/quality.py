"""Answer quality beside energy: the study's `quality:` section, scored on the very responses
of the measured window (never a separate generation), and result.json's `quality` block.

The references come from the dataset: a JSONL record's field (`references`, default
`answer`), read in the same order, and cycled the same way, as its prompts. Metrics:

- `exact_match`: the response equals the reference after SQuAD's normalisation (lower case,
  no punctuation, no articles a/an/the, single spaces);
- `contains`: the normalised reference appears in the normalised response as whole words;
- `number`: the last number in the response equals the reference's (as numbers: 5 = 5.0),
  as lm-eval's "flexible-extract" reads a GSM8K answer: a model that restates the question
  ("4 + 20 = 24") ends with its answer.

They are these few lines rather than a library's: the `evaluate` package and lm-eval load
their metrics' code from the Hugging Face Hub at run time, and runs have no network (the
images run offline); SQuAD's normalisation is the one both of them use for exact match.
The accuracy's 95% interval is Wilson's score interval, which stays within [0, 1].
"""

from __future__ import annotations

import math
import re
import string
from pathlib import Path
from typing import Literal

from pydantic import Field

from llem_harness.contract_files import StrictModel, jsonl_values

SCORER_VERSION = "2"  # 2: `number` reads the last number (1: the first)
Metric = Literal["exact_match", "contains", "number"]
Z_95 = 1.959964
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class QualityConfig(StrictModel):
    """The study's `quality:` section."""

    metric: Metric = "exact_match"
    references: str = Field("answer", min_length=1, description="the dataset's reference field")
    task: str | None = Field(None, description="a name for the task (default: the dataset)")
    # the quantization gate (the host's report, docs/quality.md): a point's accuracy against
    # the point that differs only in `quantization`, set to `reference`
    reference: str = Field("none", min_length=1, description="the gate's reference quantization")
    min_relative_accuracy: float = Field(
        0.99, gt=0, le=1, description="the gate: accuracy ÷ the reference's (MLPerf: 0.99)"
    )


class Quality(StrictModel):
    """result.json's `quality` (schema 1.10): the measured responses, scored."""

    task: str
    metric: Metric
    n: int | None = None  # responses scored
    questions: int | None = None  # 1.11: distinct questions among them (the interval's n)
    correct: int | None = None
    accuracy: float | None = None
    ci_low: float | None = None  # Wilson's 95% score interval
    ci_high: float | None = None
    scorer_version: str = SCORER_VERSION
    unavailable_reason: str | None = None


def normalise(text: str) -> str:
    """SQuAD's answer normalisation (as `evaluate`'s squad and lm-eval's exact match)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def is_correct(metric: Metric, response: str, reference: str) -> bool:
    said, want = normalise(response), normalise(reference)
    if metric == "exact_match":
        return said == want
    if metric == "contains":
        return bool(want) and f" {want} " in f" {said} "
    said_numbers, wanted = _NUMBER.findall(response), _NUMBER.search(reference)
    return bool(said_numbers) and wanted is not None and float(said_numbers[-1]) == float(wanted[0])


def wilson(correct: float, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for `correct` of `n` (`correct` may be a mean times n)."""
    p, z2 = correct / n, Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def records(path: Path, field: str) -> list[str]:
    """Every reference of a JSONL dataset, one per record, in order."""
    refs: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, obj in jsonl_values(fh, str(path)):
            value = obj.get(field) if isinstance(obj, dict) else None
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError(f"{path}, line {lineno}: no `{field}` reference for quality")
            refs.append(str(value))
    if not refs:
        raise ValueError(f"{path}: no references")
    return refs


def references(path: Path, field: str, n: int) -> list[str]:
    """The first `n` references of a JSONL dataset, cycled as its prompts are."""
    refs = records(path, field)
    return [refs[i % len(refs)] for i in range(n)]


def verdicts(cfg: QualityConfig, texts: list[str], refs: list[str]) -> list[bool]:
    """Each response against its reference; `texts` and `refs` in the prompts' order."""
    return [is_correct(cfg.metric, t, r) for t, r in zip(texts, refs, strict=True)]


def summary(cfg: QualityConfig, task: str, marks: list[bool], questions: int) -> Quality:
    """The block: how many, how many correct, the accuracy and its interval. Responses
    beyond the first `questions` repeat a question (more passes, or a load that cycles the
    prompts): they count in `n` and `correct`, but the interval's sample size is the number
    of distinct questions answered, since a repeated question is not new evidence."""
    correct, n = sum(marks), len(marks)
    if not n:
        return Quality(task=task, metric=cfg.metric, unavailable_reason="no responses")
    distinct = min(questions, n)
    low, high = wilson(correct / n * distinct, distinct)
    return Quality(task=task, metric=cfg.metric, n=n, questions=distinct, correct=correct,
                   accuracy=correct / n, ci_low=low, ci_high=high)  # fmt: skip


def per_correct(quality: Quality | None, total_j: float | None) -> float | None:
    """Joules per correct answer: the window's energy over its correct responses (None
    without energy, or with no correct answer to divide by)."""
    if quality is None or not quality.correct or total_j is None:
        return None
    return total_j / quality.correct


def run_quality(
    cfg: QualityConfig | None,
    weights: str,
    texts: list[str | None],
    dataset: Path,
    n_prompts: int,
) -> tuple[Quality | None, list[str | None], list[bool] | None]:
    """The run's `quality` block, the responses' texts and their verdicts (None: not
    scored), from the measured window's responses in order: response `i` answers prompt
    `i % n_prompts` (a window of several passes, or a serving load that cycles the prompts)."""
    if cfg is None:
        return None, texts, None
    task = cfg.task or dataset.stem
    why = None
    if weights == "dummy":
        why = "random weights (weights: dummy) answer nothing: quality needs pretrained weights"
    elif not texts or any(t is None for t in texts):
        why = "the engine gave no text for its responses"
    if why is not None:
        return Quality(task=task, metric=cfg.metric, unavailable_reason=why), texts, None
    said = [t or "" for t in texts]
    every = records(dataset, cfg.references)
    refs = [every[i % len(every)] for i in range(n_prompts)]  # as the prompts cycle
    marks = verdicts(cfg, said, [refs[i % n_prompts] for i in range(len(said))])
    return summary(cfg, task, marks, min(n_prompts, len(every))), texts, marks
