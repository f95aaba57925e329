"""Fixtures for tests against a real Docker engine and the CPU test image.

The image is built once per session through `make test-images`, the way CI and a developer
build it. Without an engine these tests skip, except under CI=true, where they fail: CI must
run them (`.ci/run` starts an engine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.docker.second_engine import SecondEngine, unavailable

IMAGE = "llem-test/pytorch:cpu"
FAULT_IMAGE = "llem-test/fault:malformed"
LABEL = "llem.study"
RUN_LABEL = "llem.run"
EXE = str(Path(sys.executable).with_name("llem-docker"))

pytestmark = pytest.mark.docker


def _engine() -> Any:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        msg = f"no Docker engine answers ({str(exc).splitlines()[0]}); `.ci/run` starts one"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return client


@pytest.fixture(scope="session")
def engine() -> Any:
    return _engine()


@pytest.fixture(scope="session")
def test_image(engine: Any) -> str:
    """`make test-images` (cached layers make a rebuild quick), plus the broken fault image."""
    subprocess.run(["make", "-s", "test-images"], cwd=REPO, check=True, timeout=1800)
    subprocess.run(
        ["docker", "build", "-q", "-t", FAULT_IMAGE, "-f", "fault.Dockerfile", "."],
        cwd=REPO / "tests" / "docker",
        check=True,
        timeout=600,
        capture_output=True,
    )
    return IMAGE


@pytest.fixture(autouse=True)
def no_container_left(engine: Any) -> Iterator[None]:
    """After every test: no container with an llem label may remain."""
    yield
    left = engine.containers.list(all=True, filters={"label": LABEL})
    for c in left:
        c.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def second_engine(test_image: str) -> Iterator[SecondEngine]:
    """A private dockerd holding the test image, for the whole session (the engine-stop and
    chaos tests restart it; the shared engine is never touched)."""
    why = unavailable()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot start a second Docker engine: {why}")
        pytest.skip(f"cannot start a second Docker engine: {why}")
    second = SecondEngine()
    try:
        second.start()
        second.load(test_image)
        yield second
    finally:
        second.destroy()


@pytest.fixture
def private_engine(second_engine: SecondEngine) -> SecondEngine:
    if not second_engine.running:  # an earlier test left it stopped
        second_engine.start()
    return second_engine


def write_study(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def tiny_study(name: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "model": "llem/tiny-llama",
        "weights": "dummy",
        "backend": "pytorch",
        "precision": "fp32",
        "dataset": "builtin",
        "n_prompts": 4,
        "max_input_tokens": 32,
        "max_output_tokens": 8,
        "warmup_runs": 1,
        "warmup_max_runs": 2,
        "execution": {"n_cycles": 1, "cycle_order": "sequential"},
    }
    doc.update(over)
    return doc


def user_config(tmp: Path, **sections: dict[str, Any]) -> Path:
    """A user config for CPU docker runs: no GPUs, no gaps, results under tmp."""
    doc: dict[str, Any] = {
        "runners": {"pytorch": f"docker:{IMAGE}"},
        "output": {"results_dir": str(tmp / "results"), "model_cache_dir": str(tmp / "hf")},
        "execution": {"config_gap_seconds": 0, "cycle_gap_seconds": 0},
        "docker": {"gpus": "none", "shm_size": "256m"},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli_env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLEM_")}
    env.update(LLEM_CONFIG=str(config), COLUMNS="200", **extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def study_dir(results: Path) -> Path:
    (only,) = [p for p in results.iterdir() if p.is_dir()]
    return only


def manifest(study: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((study / "manifest.json").read_text())
    return data


def wait_for(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
