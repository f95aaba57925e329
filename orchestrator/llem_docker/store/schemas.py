"""JSON Schema files of the public file formats, kept in docs/schemas/ (`make schemas`).

A test checks that the files match the models, so the published schemas cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llem_docker.store.manifest import Manifest
from llem_docker.store.study_result import StudyResult
from llem_harness.host_api import ErrorInfo, ExperimentResult, RunRequest

MODELS: dict[str, type[BaseModel]] = {
    "experiment": RunRequest,  # experiment.json
    "result": ExperimentResult,  # result.json
    "error": ErrorInfo,  # error.json
    "study": StudyResult,  # study.json
    "manifest": Manifest,  # manifest.json
}


def schema_text(name: str) -> str:
    schema: dict[str, Any] = MODELS[name].model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in MODELS:
        path = folder / f"{name}.schema.json"
        path.write_text(schema_text(name), encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(p)
