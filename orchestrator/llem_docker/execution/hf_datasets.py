"""`dataset: hf:<org>/<name>[:<split>]`: a Hugging Face dataset, read from the local cache.

Runs are offline, so the dataset must already be in the hub cache (`output.hub_cache_dir`,
else `<output.model_cache_dir>/hub`: `huggingface-cli download --repo-type dataset <id>`
puts it there). The host reads the cached snapshot's data files for the split (default
`train`) with pyarrow (Parquet) or as JSON Lines/JSON, takes each row's prompt as a `.jsonl`
line does (`prompt` or `text`, or the first user turn of `conversations`/`messages`; also
`instruction` and `question`), and writes them to a JSONL file that every run then gets as
its `dataset.jsonl`, exactly as a `.jsonl` dataset, with the column a `quality:` section scores
against (`quality.references`) beside each prompt. Only the rows a study needs are read.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from llem_docker.errors import ConfigError
from llem_harness.host_api import prompt_of

PREFIX = "hf:"
SUFFIXES = (".parquet", ".jsonl", ".json")
EXTRA_FIELDS = ("instruction", "question", "input")


TEMP_PREFIX = "llem-hf-dataset-"  # the JSONL copy's folder; the study loop removes it


def parse(name: str) -> tuple[str, str]:
    """(repo id, split) of `hf:<org>/<name>[:<split>]`."""
    rest = name[len(PREFIX) :]
    repo, _, split = rest.partition(":")
    return repo, split or "train"


def snapshot_files(hub_cache: Path, repo: str, split: str) -> list[Path]:
    """The cached data files of `repo` for `split`, in a stable order."""
    folder = hub_cache / f"datasets--{repo.replace('/', '--')}" / "snapshots"
    files = sorted(
        p for p in folder.glob("*/**/*") if p.is_file() and p.name.endswith(SUFFIXES)
    ) if folder.is_dir() else []  # fmt: skip
    chosen = [p for p in files if split in p.relative_to(folder).as_posix().split("/")[-1]]
    chosen = chosen or [p for p in files if f"/{split}/" in p.as_posix()]
    return chosen or (files if len(files) == 1 else [])


def locate(name: str, hub_cache: Path, source: str | None) -> list[Path]:
    """The cached data files of the dataset `name`, or a ConfigError with the download
    command (the dry run's check, and the first step of `to_jsonl`)."""
    repo, split = parse(name)
    files = snapshot_files(hub_cache, repo, split)
    if not files:
        raise ConfigError(
            f"dataset `{name}` is not in the local Hugging Face cache ({hub_cache}: no data "
            f"files of split `{split}` under datasets--{repo.replace('/', '--')})",
            source=source,
            key="dataset",
            fix=f"download it there first (HF_HOME / output.model_cache_dir): "
            f"`huggingface-cli download --repo-type dataset {repo}`; runs are offline",
        )
    return files


def _rows(path: Path) -> Any:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            yield from (json.loads(line) for line in fh if line.strip())
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from data if isinstance(data, list) else []


def _prompt(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    text = prompt_of(row)
    if not isinstance(text, str) or not text:
        text = next((row[f] for f in EXTRA_FIELDS if isinstance(row.get(f), str)), None)
    return text or None


def to_jsonl(
    name: str, hub_cache: Path, n: int, source: str | None, keep: tuple[str, ...] = ()
) -> Path:
    """The first `n` prompts of the cached dataset `name` as a JSONL file, each with the
    columns `keep` names (quality's references) as they are, under the same names."""
    files = locate(name, hub_cache, source)
    records: list[dict[str, Any]] = []
    for path in files:
        for row in _rows(path):
            if (text := _prompt(row)) is not None:
                records.append({"prompt": text} | _kept(row, keep, name, len(records), source))
            if len(records) >= n:
                break
        if len(records) >= n:
            break
    if not records:
        raise ConfigError(
            f"dataset `{name}`: no row of {', '.join(p.name for p in files)} has a prompt",
            source=source,
            key="dataset",
            fix="use a dataset whose rows have `prompt`, `text`, `instruction`, `question` or "
            "a conversation, or convert it to a .jsonl file",
        )
    out = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / "dataset.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return out


def _kept(
    row: dict[str, Any], keep: tuple[str, ...], name: str, index: int, source: str | None
) -> dict[str, Any]:
    """The row's reference columns; a missing or non-scalar one is refused here, before any
    run, naming the column and the prompt."""
    out = {}
    for column in keep:
        value = row.get(column)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(
                f"dataset `{name}`: prompt {index} (a row with a prompt) has no `{column}` "
                f"column to score quality against (got {value!r:.60})",
                source=source,
                key="quality.references",
                fix="name the dataset's column that holds each answer in quality.references",
            )
        out[column] = value
    return out
