"""The engine conformance suite (tests/conformance/engine_suite.py) for vllm, for real: vLLM's CPU
build inside its CPU test image, as the calling user, the suite mounted read-only."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conformance.engine_suite import CHECKS
from tests.conftest import REPO
from tests.docker.test_vllm import vllm_image  # noqa: F401 (fixture)

OPTIONS = {"max_num_seqs": 4, "gpu_memory_utilization": 0.2, "enforce_eager": True}


def test_vllm_passes_the_conformance_suite(engine: Any, vllm_image: str) -> None:  # noqa: F811
    out = engine.containers.run(
        vllm_image,
        ["python3", "-m", "tests.conformance.engine_suite", "vllm", json.dumps(OPTIONS)],
        volumes={str(REPO / "tests"): {"bind": "/suite/tests", "mode": "ro"}},
        working_dir="/suite",
        environment={"PYTHONPATH": "/suite", "HOME": "/tmp"},
        user=f"{os.getuid()}:{os.getgid()}",
        shm_size="1g",
        network_disabled=True,
        remove=True,
    )
    lines = out.decode().splitlines()
    assert [line for line in lines if line.startswith(("ok", "FAIL"))] == [
        f"ok vllm: {check}" for check in CHECKS
    ], out.decode()[-3000:]
