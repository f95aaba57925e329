"""Prompt sets: exact synthetic lengths, deterministic built-ins, JSONL files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_harness.config import ExperimentConfig
from llem_harness.datasets import builtin_prompts, jsonl_prompts, load_prompt_ids
from llem_harness.models import byte_tokenize, shipped_config


def cfg(**kw: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": "llem/tiny-llama", "backend": "pytorch", **kw})


def test_synthetic_has_exact_lengths(tmp_path: Path) -> None:
    ids = load_prompt_ids(
        cfg(dataset="synthetic", n_prompts=7, max_input_tokens=33), byte_tokenize, 1024, tmp_path
    )
    assert len(ids) == 7 and {len(p) for p in ids} == {33}
    assert all(0 <= t < 1024 for p in ids for t in p)


def test_builtin_is_deterministic_and_truncated(tmp_path: Path) -> None:
    assert builtin_prompts(5, 1) == builtin_prompts(5, 1) != builtin_prompts(5, 2)
    ids = load_prompt_ids(cfg(n_prompts=20, max_input_tokens=64), byte_tokenize, 1024, tmp_path)
    assert len(ids) == 20 and max(len(p) for p in ids) == 64


def test_jsonl_relative_to_run_dir(tmp_path: Path) -> None:
    (tmp_path / "dataset.jsonl").write_text('{"prompt": "hello"}\n\n{"text": "world!"}\n')
    ids = load_prompt_ids(cfg(dataset="dataset.jsonl", n_prompts=3), byte_tokenize, 1024, tmp_path)
    assert [len(p) for p in ids] == [6, 7, 6]  # BOS + bytes, cycling through the file


@pytest.mark.parametrize(
    ("body", "message"),
    [("not json\n", "line 1: not JSON"), ('{"prompt": ""}\n', "non-empty"), ("\n", "no prompts")],
)
def test_jsonl_errors(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(body)
    with pytest.raises(ValueError, match=message):
        jsonl_prompts(f, 2)


def test_shipped_configs() -> None:
    tiny = shipped_config("llem/tiny-llama")
    assert tiny is not None
    assert tiny["hidden_size"] // tiny["num_attention_heads"] >= 64
    for name in ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-7B"):
        assert shipped_config(name) is not None
    assert shipped_config("nobody/nothing") is None


def test_conversations_give_their_first_user_turn(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text(
        '{"conversations": [{"from": "system", "value": "be brief"},'
        ' {"from": "human", "value": "what is a joule?"}, {"from": "gpt", "value": "..."}]}\n'
        '{"messages": [{"role": "user", "content": "and a watt?"}]}\n'
        '{"prompt": "plain"}\n'
    )
    assert jsonl_prompts(path, 4) == [
        "what is a joule?",
        "and a watt?",
        "plain",
        "what is a joule?",
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": [{"from": "gpt", "value": "only an answer"}]}\n')
    with pytest.raises(ValueError, match=r"line 1: needs .*first user turn"):
        jsonl_prompts(bad, 1)


def test_a_pretrained_tokenizer_with_a_chat_template_wraps_each_prompt() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from llem_harness.models import tokenize

    vocab = {"<unk>": 0, "<s>": 1, "USER": 2, "ASSISTANT": 3, "hello": 4, "world": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    assert tokenize("hello world", fast, 6) == [4, 5]  # no template: the plain ids
    fast.chat_template = (
        "{% for m in messages %}USER {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT{% endif %}"
    )
    assert tokenize("hello world", fast, 6) == [2, 4, 5, 3]


def test_a_long_templated_prompt_keeps_the_template_end() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from llem_harness.models import tokenize

    vocab = {"<unk>": 0, "USER": 2, "ASSISTANT": 3, "w": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.chat_template = "USER {{ messages[0]['content'] }} ASSISTANT"
    ids = tokenize("w " * 50, fast, 5, max_tokens=10)
    assert len(ids) <= 10 and ids[0] == 2 and ids[-1] == 3  # cut inside, not at the end
    with pytest.raises(ValueError, match="chat template alone"):
        tokenize("w", fast, 5, max_tokens=1)
