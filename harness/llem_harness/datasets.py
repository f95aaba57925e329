"""Prompt sets, turned into token ids so every backend gets exactly the same inputs.

- `builtin`: prompts generated here from templates with a seeded RNG (no third-party text,
  so no licence question), tokenized and cut to `max_input_tokens`.
- `synthetic`: exactly `max_input_tokens` pseudo-random token ids per prompt.
- a `.jsonl` path: one object per line with a `prompt` (or `text`) string, or a conversation
  (ShareGPT's `conversations`, or `messages`) whose first user turn is the prompt.

With pretrained weights whose tokenizer has a chat template, each prompt goes through it as
one user turn, with the generation prompt (models.tokenize; pytorch, vllm and serving runs,
not yet tensorrt); `random`/dummy weights and
`synthetic` ids do not. Every prompt's length is recorded per request (responses.parquet).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from llem_harness.config import ExperimentConfig
from llem_harness.contract_files import jsonl_values

Tokenize = Callable[[str], list[int]]

_TASKS = [
    "Explain {topic} to a new engineer in plain words, with one worked example.",
    "Write a short story in which {topic} decides the ending.",
    "List the trade-offs of {topic} and say when each one matters most.",
    "Summarise the history of {topic} in five sentences.",
    "Draft an email to a colleague proposing a study of {topic}.",
    "Describe three common mistakes people make with {topic} and how to avoid them.",
    "Compare {topic} with {other}, and recommend one for a small team.",
    "Write a lesson plan that teaches {topic} in one hour.",
]
_TOPICS = [
    "energy measurement of GPUs",
    "batch scheduling",
    "key-value caches",
    "river ecology",
    "sourdough baking",
    "tidal power",
    "compilers",
    "urban cycling",
    "bee colonies",
    "error correcting codes",
    "the printing press",
    "mountain weather",
    "solar panels",
    "public libraries",
    "sorting algorithms",
    "ocean currents",
    "chess openings",
    "vaccination campaigns",
    "container shipping",
    "jazz improvisation",
]


def builtin_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic, other = rng.sample(_TOPICS, 2)
        task = rng.choice(_TASKS).format(topic=topic, other=other)
        context = " ".join(
            rng.choice(_TASKS).format(topic=rng.choice(_TOPICS), other=rng.choice(_TOPICS))
            for _ in range(rng.randint(2, 12))
        )
        out.append(f"Background notes: {context}\nTask: {task}")
    return out


def prompt_line(obj: object, where: str, lineno: int) -> str:
    """One dataset line's prompt, or a ValueError naming the file and the line."""
    text = prompt_of(obj) if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text:
        raise ValueError(
            f"{where}, line {lineno}: needs a non-empty `prompt` (or `text`) string, or "
            "a conversation (`conversations` as in ShareGPT, or `messages`) whose "
            "first user turn is one"
        )
    return text


def count_prompts(path: Path) -> int:
    """Every line of a JSONL dataset checked as a run reads it, streamed (a large file is
    never held whole): the number of prompts, or a ValueError naming the first bad line."""
    count = 0
    with path.open("rb") as fh:
        for lineno, obj in jsonl_values(_decoded(fh, str(path)), str(path)):
            prompt_line(obj, str(path), lineno)
            count += 1
    if not count:
        raise ValueError(f"{path}: no prompts")
    return count


def _decoded(lines: Iterable[bytes], where: str) -> Iterator[str]:
    """Each line as text, or a ValueError naming the line that is not UTF-8."""
    for lineno, raw in enumerate(lines, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where}, line {lineno}: not UTF-8 text ({exc.reason})") from None


def jsonl_prompts(path: Path, n: int) -> list[str]:
    prompts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, obj in jsonl_values(fh, str(path)):
            prompts.append(prompt_line(obj, str(path), lineno))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    # Cycle through the file when it holds fewer prompts than asked for.
    return [prompts[i % len(prompts)] for i in range(n)]


USER_ROLES = ("human", "user")


def prompt_of(obj: dict[str, object]) -> object:
    """A line's prompt: `prompt` or `text`; or the first user turn of a conversation, ShareGPT
    style (`conversations: [{from: human, value}, …]`) or OpenAI style (`messages: [{role:
    user, content}, …]`)."""
    if "prompt" in obj or "text" in obj:
        return obj.get("prompt", obj.get("text"))
    turns = obj.get("conversations", obj.get("messages"))
    if not isinstance(turns, list):
        return None
    for turn in turns:
        if isinstance(turn, dict) and turn.get("from", turn.get("role")) in USER_ROLES:
            return turn.get("value", turn.get("content"))
    return None


def synthetic_ids(n: int, length: int, vocab_size: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    low, high = min(100, vocab_size // 4), min(vocab_size, 32_000) - 1
    return [[rng.randint(low, high) for _ in range(length)] for _ in range(n)]


def load_prompt_ids(
    cfg: ExperimentConfig, tokenize: Tokenize, vocab_size: int, run_dir: Path
) -> list[list[int]]:
    """Token ids of every prompt, each at most `max_input_tokens` long."""
    if cfg.dataset == "synthetic":
        return synthetic_ids(cfg.n_prompts, cfg.max_input_tokens, vocab_size, cfg.random_seed)
    if cfg.dataset == "builtin":
        texts = builtin_prompts(cfg.n_prompts, cfg.random_seed)
    else:
        path = Path(cfg.dataset)
        path = path if path.is_absolute() else run_dir / path
        if not path.exists():
            raise FileNotFoundError(f"dataset file {path} does not exist")
        texts = jsonl_prompts(path, cfg.n_prompts)
    ids = [tokenize(t)[: cfg.max_input_tokens] for t in texts]
    for i, seq in enumerate(ids):
        if not seq:
            raise ValueError(f"prompt {i} tokenizes to nothing")
    return ids
