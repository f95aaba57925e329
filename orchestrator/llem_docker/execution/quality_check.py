"""A study's `quality:` checked before anything runs, the dry run included: every record of a
local JSONL dataset must carry the reference field the scoring reads (harness quality.py).
Hub datasets (`hf:`) are checked when they are read, before the first run."""

from __future__ import annotations

import json
from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan


def check_quality(plan: StudyPlan, study: StudyConfig) -> None:
    base = Path(study.source).resolve().parent if study.source else Path.cwd()
    seen: set[tuple[str, str]] = set()
    for point in plan.points:
        cfg = point.config
        if cfg.quality is None or not cfg.dataset.endswith(".jsonl"):
            continue
        key = (cfg.dataset, cfg.quality.references)
        if key in seen:
            continue
        seen.add(key)
        path = Path(cfg.dataset).expanduser()
        path = path if path.is_absolute() else base / path
        if path.is_file():  # a missing file is the dataset check's to report
            _check_file(path, cfg.quality.references, study.source)


def _check_file(path: Path, field: str, source: str | None) -> None:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # not JSON: the dataset's own check says so
            value = record.get(field) if isinstance(record, dict) else None
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ConfigError(
                    f"{path}, line {lineno}: no `{field}` reference to score quality against",
                    source=source,
                    key="quality.references",
                    fix=f"give every record a `{field}` field, or name the field that holds "
                    "the references in quality.references",
                )
