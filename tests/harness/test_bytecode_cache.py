"""The bytecode cache for engines installed without .pyc files (llem_harness/bytecode.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llem_harness import bytecode

PROBE = ("fakeengine/late.py",)


def _package(root: Path, with_bytecode: bool) -> Path:
    pkg = root / "fakeengine"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "late.py").write_text("VALUE = 42\n")
    if with_bytecode:
        import py_compile

        py_compile.compile(str(pkg / "late.py"), doraise=True)
    return root


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "pycache_prefix", None)
    return root


def test_an_engine_without_bytecode_gets_a_keyed_prefix_in_the_cache(
    on_path: Path, tmp_path: Path
) -> None:
    _package(on_path, with_bytecode=False)
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    got = bytecode.configure_bytecode_cache(str(tmp_path / "cache"), env, PROBE)
    prefix = tmp_path / "cache" / "bytecode" / bytecode.environment_key()
    assert got.model_dump(exclude_none=True) == {
        "prefix": str(prefix),
        "source": "harness",
        "missing": ["fakeengine/late.py"],
    }
    assert env == {"PYTHONPYCACHEPREFIX": str(prefix)} and prefix.is_dir()


def test_an_engine_with_bytecode_is_left_alone(on_path: Path, tmp_path: Path) -> None:
    _package(on_path, with_bytecode=True)
    env: dict[str, str] = {}
    got = bytecode.configure_bytecode_cache(str(tmp_path / "cache"), env, PROBE)
    assert got.prefix is None and "beside its sources" in (got.reason or "") and env == {}


def test_the_users_prefix_wins_and_no_cache_says_why(on_path: Path, tmp_path: Path) -> None:
    _package(on_path, with_bytecode=False)
    env = {"PYTHONPYCACHEPREFIX": "/mine"}
    got = bytecode.configure_bytecode_cache(str(tmp_path), env, PROBE)
    assert got.model_dump(exclude_none=True) == {"prefix": "/mine", "source": "user", "missing": []}
    got = bytecode.configure_bytecode_cache(None, {}, PROBE)
    assert got.prefix is None and got.missing == ["fakeengine/late.py"]


def test_the_key_changes_with_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    key = bytecode.environment_key()
    assert key.startswith(f"py{sys.version_info.major}{sys.version_info.minor}-")
    monkeypatch.setattr(sys, "prefix", "/another/env")
    assert bytecode.environment_key() != key


def test_a_second_process_loads_the_bytecode_the_first_wrote(tmp_path: Path) -> None:
    """Two real interpreters, as two runs: the engine's folder is read-only for writes of
    bytecode (PYTHONDONTWRITEBYTECODE, as a root-owned site-packages is for a user); the
    first run compiles into the cache, the second finds it there."""
    site = _package(tmp_path / "site", with_bytecode=False)
    cache = tmp_path / "cache"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from llem_harness.bytecode import configure_bytecode_cache as c;"
        "r = c(sys.argv[3], probes=('fakeengine/late.py',));"
        "import importlib.util, fakeengine.late as m;"
        "print(r.prefix is not None, m.__cached__ is not None and "
        "__import__('os').path.exists(m.__cached__))"
    )
    harness = str(Path(bytecode.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    cmd = [sys.executable, "-c", script, str(site), harness, str(cache)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["True", "True"]  # written into the cache
    assert not (site / "fakeengine" / "__pycache__").exists()  # not beside the sources
    written = list((cache / "bytecode").rglob("late*.pyc"))
    assert len(written) == 1
    stamp = written[0].stat().st_mtime_ns
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert second.stdout.split() == ["True", "True"]
    assert written[0].stat().st_mtime_ns == stamp  # read, not compiled again
