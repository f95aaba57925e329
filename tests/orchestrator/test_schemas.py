"""docs/schemas/*.schema.json are the models' JSON Schemas, and validate real documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_docker.store.schemas import MODELS, schema_text
from tests.conftest import REPO


@pytest.mark.parametrize("name", sorted(MODELS))
def test_published_schema_is_current(name: str) -> None:
    path = REPO / "docs" / "schemas" / f"{name}.schema.json"
    assert path.is_file(), f"{path} is missing: run `make schemas`"
    assert path.read_text() == schema_text(name), f"{path} is stale: run `make schemas`"


def test_write(tmp_path: Path) -> None:
    from llem_docker.store.schemas import write

    assert sorted(p.name for p in write(tmp_path)) == sorted(f"{n}.schema.json" for n in MODELS)
