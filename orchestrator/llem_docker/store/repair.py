"""study.json and results.parquet are built from the manifest and the run folders
(store/collect.py), so a torn or corrupted copy of either is rebuilt rather than trusted:
`llem-docker status` rebuilds it at once and says so, and `run --resume` says so and rebuilds
it when the study ends (it writes both then anyway)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from llem_docker.store.collect import assemble
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest
from llem_docker.store.study_result import StudyResult


def torn_outputs(study_dir: Path) -> dict[str, str]:
    """The outputs that exist but cannot be read: file name -> why (missing ones are not torn:
    a study that never ended has none yet)."""
    layout, out = StudyDir(study_dir), {}
    if layout.study_json.exists():
        try:
            StudyResult.model_validate_json(layout.study_json.read_text("utf-8"))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            out[layout.study_json.name] = str(exc).splitlines()[0]
    if layout.results_parquet.exists():
        try:
            pq.read_table(layout.results_parquet)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            out[layout.results_parquet.name] = str(exc).splitlines()[0]
    return out


def rebuild_torn(study_dir: Path, manifest: Manifest) -> list[str]:
    """Rebuild torn outputs from the manifest and the run folders; a note for each."""
    torn = torn_outputs(study_dir)
    if not torn:
        return []
    assemble(study_dir, manifest)
    return [
        f"{name} could not be read ({why}); rebuilt from the run folders"
        for name, why in torn.items()
    ]
