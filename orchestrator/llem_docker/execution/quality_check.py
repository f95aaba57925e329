"""A study's `quality:` checked before anything runs, the dry run included: every record of a
local JSONL dataset must carry the reference field the scoring reads (harness quality.py).
Hub datasets (`hf:`) are checked when they are read, before the first run."""

from __future__ import annotations

from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import references


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
    """The harness's own reading of the references (quality.py), so that the host refuses
    exactly what a run would."""
    try:
        references(path, field, 1)
    except ValueError as exc:
        raise ConfigError(
            str(exc),
            source=source,
            key="quality.references",
            fix=f"give every record a `{field}` field, or name the field that holds "
            "the references in quality.references",
        ) from None
