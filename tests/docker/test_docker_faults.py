"""Fault studies through the Docker runner: each failure is recorded in the manifest with a
type and a message, and the study goes on with the next run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import (
    FAULT_IMAGE,
    cli_env,
    manifest,
    run_cli,
    study_dir,
    tiny_study,
    user_config,
    write_study,
)

pytestmark = pytest.mark.docker


def _run(
    tmp_path: Path,
    study: dict[str, Any],
    env: dict[str, str] | None = None,
    **config: dict[str, Any],
) -> dict[str, Any]:
    path = write_study(tmp_path / "fault.yaml", study)
    proc = run_cli(["run", str(path)], cli_env(user_config(tmp_path, **config), **(env or {})))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return manifest(study_dir(tmp_path / "results"))


def _run_dir(tmp_path: Path, run: dict[str, Any]) -> Path:
    return study_dir(tmp_path / "results") / "runs" / run["run_id"]


def test_harness_error_is_recorded_and_the_study_goes_on(tmp_path: Path, test_image: str) -> None:
    study = tiny_study(
        "harness-error", sweep={"model": ["no-such-org/no-such-model", "llem/tiny-llama"]}
    )
    bad, good = _run(tmp_path, study)["runs"]
    assert bad["state"] == "failed" and bad["error"]["phase"] == "load"
    assert "no-such-org/no-such-model" in bad["error"]["message"]
    assert bad["exit_code"] not in (0, None)
    assert (_run_dir(tmp_path, bad) / "error.json").exists()
    assert good["state"] == "completed"


def test_timeout_stops_the_container(tmp_path: Path, test_image: str) -> None:
    study = tiny_study(
        "timeout",
        max_output_tokens=64,
        sweep={"n_prompts": [4000, 4]},
    )
    man = _run(tmp_path, study, execution={"experiment_timeout_seconds": 25})
    slow, quick = man["runs"]
    assert slow["state"] == "failed" and slow["error"]["type"] == "Timeout"
    assert "experiment_timeout_seconds = 25" in slow["error"]["message"]
    # The container got SIGTERM first: the harness said where it was stopped.
    assert (_run_dir(tmp_path, slow) / "error.json").exists()
    assert quick["state"] == "completed"


def test_oom_kill_is_detected(tmp_path: Path, test_image: str) -> None:
    # Llama-3.2-1B shapes in fp32 need ~5 GB for random weights; the container gets 1 GB.
    study = tiny_study("oom", sweep={"model": ["meta-llama/Llama-3.2-1B", "llem/tiny-llama"]})
    man = _run(tmp_path, study, docker={"memory": "1g"})
    big, tiny = man["runs"]
    assert big["state"] == "failed" and big["error"]["type"] == "OOMKilled"
    assert "docker.memory" in big["error"]["message"] and big["exit_code"] == 137
    assert tiny["state"] == "completed"


def test_malformed_result_is_a_failure(tmp_path: Path, test_image: str) -> None:
    man = _run(tmp_path, tiny_study("malformed"), runners={"pytorch": f"docker:{FAULT_IMAGE}"})
    (run,) = man["runs"]
    assert run["state"] == "failed" and run["error"]["type"] == "MalformedResult"


def test_missing_image_names_make_images_and_trips_the_breaker(
    tmp_path: Path, test_image: str
) -> None:
    study = tiny_study("missing", sweep={"batch_size": [1, 2, 3]})
    # Past the start-up handshake (tests/docker/test_images.py), e.g. an image deleted
    # while the study runs: each run records it.
    man = _run(
        tmp_path,
        study,
        env={"LLEM_SKIP_IMAGE_CHECK": "1"},
        runners={"pytorch": "docker:llem-test/absent:none"},
        execution={"max_consecutive_failures": 2},
    )
    first, second, third = man["runs"]
    for run in (first, second):
        assert run["error"]["type"] == "ImageNotFound"
        assert "make images" in run["error"]["message"]
        assert "llem-test/absent:none" in run["error"]["message"]
    assert third["state"] == "skipped" and third["error"]["type"] == "CircuitBreaker"
    assert man["state"] == "aborted"
