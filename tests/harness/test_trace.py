"""Trace replay's reader (serving/trace.py) and its grammar: formats, units, the rate factor,
output lengths, and every refusal naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_harness.config import ExperimentConfig
from llem_harness.serving.trace import read_trace


def jsonl(tmp_path: Path, *records: object, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_offsets_count_from_the_first_and_scale(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"timestamp": 10.0}, {"timestamp": 10.5}, {"timestamp": 12})
    assert read_trace(path).offsets == [0.0, 0.5, 2.0]
    assert read_trace(path, scale=2.0).offsets == [0.0, 0.25, 1.0]
    assert read_trace(path).output_tokens is None
    for key in ("time", "arrival_s"):
        assert read_trace(jsonl(tmp_path, {key: 1}, {key: 3})).offsets == [0.0, 2.0]


def test_a_mooncake_like_trace_in_milliseconds(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [1, 2]},
        {"timestamp": 250, "input_length": 100, "output_length": 0},
        {"timestamp": 1000, "input_length": 100, "output_length": 7},
    )
    trace = read_trace(path, unit="ms")
    assert trace.offsets == pytest.approx([0.0, 0.25, 1.0])
    assert trace.output_tokens == [52, 0, 7]
    assert read_trace(path, scale=0.5, unit="ms").offsets == pytest.approx([0.0, 0.5, 2.0])


def test_a_burstgpt_like_csv(tmp_path: Path) -> None:
    path = tmp_path / "burst.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "5,ChatGPT,1087,271,1358,Conversation log\n"
        "7.5,GPT-4,417,0,417,Conversation log\n"
    )
    trace = read_trace(path)
    assert trace.offsets == [0.0, 0.0, 2.5] and trace.output_tokens == [18, 271, 0]
    plain = tmp_path / "plain.csv"
    plain.write_text("time\n0\n1\n")
    assert read_trace(plain).offsets == [0.0, 1.0] and read_trace(plain).output_tokens is None


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"timestamp": 1}', '{"timestamp": 0.5}'], "line 2: timestamp 0.5 is earlier"),
        (['{"timestamp": -1}'], "line 1: timestamp -1 is negative"),
        (['{"timestamp": 1}', "", '{"timestamp": "soon"}'], "line 3: timestamp 'soon' is not a"),
        (['{"timestamp": 1}', '{"timestamp": "inf"}'], "line 2: timestamp 'inf' is not a finite"),
        (['{"timestamp": 1}', '{"timestamp": NaN}'], "line 2: timestamp nan is not a finite"),
        (['{"timestamp": 1}', '{"at": 2}'], "line 2: no timestamp"),
        (['{"timestamp": 1}', "not json"], "line 2: not JSON"),
        (['{"timestamp": 1}', "[1]"], "line 2: not a JSON object"),
        (['{"timestamp": 1, "output_length": 3}', '{"timestamp": 2}'], "line 2: an output len"),
        (['{"timestamp": 1, "output_tokens": 2.5}'], "line 1: output_tokens 2.5 is not a whole"),
        (['{"timestamp": 1, "output_tokens": -2}'], "line 1: output_tokens -2 is not a whole"),
        ([], "has no requests"),
        (["", "  "], "has no requests"),
    ],
)
def test_bad_jsonl_traces_are_refused_naming_the_file_and_line(
    tmp_path: Path, lines: list[str], match: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=match) as err:
        read_trace(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Model,Request tokens\nx,3\n", "line 1: no timestamp column"),
        ("Timestamp\n1\n2\n0\n", "line 4: timestamp 0 is earlier"),
        ("Timestamp\n1\nx\n", "line 3: timestamp 'x' is not a number"),
        ("Timestamp,Response tokens\n1,4\n2,\n", "line 3: an output length"),
        ("Timestamp\n1\n\n-3\n", "line 4: timestamp -3 is negative"),
        ("", "has no requests"),
        ("Timestamp\n", "has no requests"),
    ],
)
def test_bad_csv_traces_are_refused_naming_the_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_trace(path)


def test_scale_and_unit_are_checked(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"timestamp": 0})
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="scale"):
            read_trace(path, scale=bad)
    with pytest.raises(ValueError, match="unit"):
        read_trace(path, unit="us")


def cfg(**serving: object) -> ExperimentConfig:
    return ExperimentConfig(
        model="llem/tiny-llama", backend="vllm", weights="dummy", scenario="serving",
        max_output_tokens=5, serving=serving or None,
    )  # fmt: skip


def test_the_grammar_of_a_trace_and_the_hashes_that_hold() -> None:
    ok = cfg(arrival="trace", trace="burst.csv", trace_scale=2.0, trace_unit="ms", n_requests=9)
    assert ok.canonical()["serving"]["trace"] == "burst.csv"
    with pytest.raises(ValidationError, match=r"needs serving\.trace"):
        cfg(arrival="trace")
    with pytest.raises(ValidationError, match="set arrival: trace"):
        cfg(trace="t.jsonl")
    with pytest.raises(ValidationError, match="set arrival: trace"):
        cfg(request_rate=2, trace_scale=2.0)
    with pytest.raises(ValidationError, match="duration_s has no meaning"):
        cfg(arrival="trace", trace="t.jsonl", request_rate=2, duration_s=3.0)
    with pytest.raises(ValidationError, match=r"\.jsonl or \.csv"):
        cfg(arrival="trace", trace="t.txt")
    for bad in (0.0, float("inf")):
        with pytest.raises(ValidationError, match="trace_scale"):
            cfg(arrival="trace", trace="t.jsonl", trace_scale=bad)
    scaled = cfg(arrival="trace", trace="t.jsonl", trace_scale=2.0)
    assert scaled.config_hash() != cfg(arrival="trace", trace="t.jsonl").config_hash()


def test_existing_serving_config_hashes_are_unchanged() -> None:
    """Hashes computed before trace replay existed (the new keys are dropped at their
    defaults, as arrival_per_cycle is)."""
    assert cfg().config_hash() == (
        "706c60b29bed71d87decb8678923f9a8ebfa21b1e09ba49e5bde9a93b225ba79"
    )
    gamma = cfg(
        request_rate=8, arrival="gamma", burstiness=0.5, n_requests=64, slo={"ttft_ms": 500}
    )
    assert gamma.config_hash() == (
        "491c31c7141ffc8b5415ab8546f840cf190fbee0036b999fadfe04bc8b4cf22b"
    )
    assert not {"trace", "trace_scale", "trace_unit"} & set(gamma.canonical()["serving"])
