"""Fixtures for tests against a real single-node SLURM cluster (Debian's slurm-wlm + munge).

`make slurm-up` starts it when no controller answers (`.ci/run` installs the packages and
calls it first). Without the packages these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The SIF of the Apptainer path (tests/apptainer builds it once per image) and what it needs.
from tests.apptainer.conftest import apptainer, test_sif  # noqa: F401
from tests.conftest import REPO
from tests.docker.conftest import engine, test_image  # noqa: F401

EXE = str(Path(sys.executable).with_name("llem-docker"))

pytestmark = pytest.mark.slurm


def _answers() -> bool:
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and any(
        s in ("idle", "mixed", "allocated")
        for s in proc.stdout.split()  # `idle*`: no answer
    )


@pytest.fixture(scope="session")
def cluster() -> None:
    if _answers():
        return
    missing = [t for t in ("sbatch", "slurmctld", "slurmd", "munged") if not shutil.which(t)]
    if missing:
        msg = f"no SLURM cluster and no {', '.join(missing)}: `.ci/run` installs slurm-wlm, munge"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    subprocess.run(["make", "-s", "slurm-up"], cwd=REPO, check=True, timeout=300)
    assert _answers(), "make slurm-up returned, but sinfo shows no usable node"
