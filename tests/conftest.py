"""Shared fixtures: an isolated environment so a developer's own config never leaks in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for var in list(os.environ):
        if var.startswith("LLEM_") and var not in ("LLEM_TEST_IMAGE",):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield
