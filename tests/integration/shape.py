"""The shape of a study's outputs, for comparing them across a change: results.parquet's
columns and types, and the key tree of study.json and of each result.json (values left out, so
timings and figures do not matter; a list's shape is the union of its items')."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def structure(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: structure(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                merged |= structure(item)
        return [merged] if merged else []
    return "value"


def study_shape(study_dir: Path) -> dict[str, Any]:
    schema = pq.read_schema(study_dir / "results.parquet")
    results = [json.loads(p.read_text()) for p in sorted(study_dir.glob("runs/*/result.json"))]
    merged: dict[str, Any] = {}
    for r in results:
        merged |= structure(r)
    return {
        "results.parquet": {f.name: str(f.type) for f in schema},
        "study.json": structure(json.loads((study_dir / "study.json").read_text())),
        "result.json": merged,
    }


if __name__ == "__main__":
    print(json.dumps(study_shape(Path(sys.argv[1])), indent=1, sort_keys=True))
