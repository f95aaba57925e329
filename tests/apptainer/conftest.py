"""Fixtures for tests against a real Apptainer (Debian unstable's package).

`.ci/run` provides it with `make apptainer-up` (tests/apptainer/apptainer-up.sh: the binary in
an mmdebstrap root of its own, a wrapper on PATH). Without it these tests skip, except under
CI=true, where they fail. The SIF is built once per image by `make sif` from the CPU test image
(`make test-images`, shared with tests/docker) and kept in .build/sif, keyed by the image's id.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.docker.conftest import engine, test_image  # noqa: F401  (session fixtures)

SIF_DIR = REPO / ".build" / "sif"
SIF = SIF_DIR / "llem-pytorch-cpu.sif"

pytestmark = pytest.mark.apptainer


def _missing(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def apptainer() -> str:
    """The real `apptainer` on PATH (its version answers), or skip / fail."""
    path = shutil.which("apptainer")
    if path is None:
        _missing("no apptainer on PATH: `make apptainer-up` provides one (`.ci/run` does)")
    assert path is not None
    proc = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        _missing(f"`apptainer version` failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return path


@pytest.fixture(scope="session")
def test_sif(apptainer: str, engine: Any, test_image: str) -> Path:  # noqa: F811
    """`make sif` of llem-test/pytorch:cpu, rebuilt only when the image changed."""
    image_id = engine.images.get(test_image).id
    stamp = SIF.with_suffix(".sif.image-id")
    if SIF.is_file() and stamp.is_file() and stamp.read_text() == image_id:
        return SIF
    SIF_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["make", "-s", "sif", "BACKENDS=pytorch", "IMAGE_REPO=llem-test", "IMAGE_TAG=cpu"],
        cwd=REPO,
        env={**os.environ, "SIF_DIR": str(SIF_DIR)},
        check=True,
        timeout=1800,
    )
    stamp.write_text(image_id)
    return SIF


def scratch_sif(apptainer: str, path: Path, labels: dict[str, str]) -> Path:
    """A real, nearly empty SIF with these labels (`Bootstrap: scratch`): seconds to build,
    for the handshake's refusals."""
    definition = path.with_suffix(".def")
    lines = ["Bootstrap: scratch", "", "%labels", *(f"    {k} {v}" for k, v in labels.items())]
    definition.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [apptainer, "build", "--force", str(path), str(definition)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path
