"""A study's `quality:` checked before anything runs, the dry run included: every record of a
local JSONL dataset must carry the reference field the scoring reads (harness quality.py).
Hub datasets (`hf:`) are checked as they are read into the runs' JSONL file
(hf_datasets.py), before the first run. A study that sweeps `quantization` must have the
quantization gate's reference point among the values (`quality.reference`)."""

from __future__ import annotations

from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import references


def check_quality(plan: StudyPlan, study: StudyConfig) -> None:
    seen: set[tuple[str, str]] = set()
    for point in plan.points:
        cfg = point.config
        if cfg.quality is not None:
            _check_reference(plan, cfg.quality.reference, study.source)
        if cfg.quality is None or not cfg.dataset.endswith(".jsonl"):
            continue
        key = (cfg.dataset, cfg.quality.references)
        if key in seen:
            continue
        seen.add(key)
        path = study.path_of(cfg.dataset)
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


def _check_reference(plan: StudyPlan, reference: str, source: str | None) -> None:
    """When the study sweeps quantization, the gate's reference value must be one of them."""
    values = {str(v) for p in plan.points if (v := p.swept.get("quantization")) is not None}
    if values and reference not in values:
        raise ConfigError(
            f"quality.reference is `{reference}`, but the study sweeps quantization over "
            f"{', '.join(sorted(values))}: the gate has no reference point",
            source=source,
            key="quality.reference",
            fix=f"add `{reference}` to the quantization sweep, or set quality.reference to one "
            "of its values",
        )
