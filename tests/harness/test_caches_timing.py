"""Compile-cache set-up and per-phase timing, without running an engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llem_harness import timing
from llem_harness.caches import configure_compile_caches


def test_caches_go_under_the_engine_cache_unless_the_user_set_them(tmp_path: Path) -> None:
    env = {"LLEM_ENGINE_CACHE": str(tmp_path), "VLLM_CACHE_ROOT": "/elsewhere"}
    got = configure_compile_caches(env)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "triton")
    assert env["VLLM_CACHE_ROOT"] == "/elsewhere"  # the user's choice wins
    assert env["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    assert got.root == str(tmp_path)
    assert got.vars["VLLM_CACHE_ROOT"].model_dump() == {"value": "/elsewhere", "source": "user"}
    assert got.vars["TRITON_CACHE_DIR"].source == "harness"
    assert (tmp_path / "inductor").is_dir()


def test_no_engine_cache_leaves_the_defaults_and_says_so() -> None:
    env: dict[str, str] = {}
    got = configure_compile_caches(env)
    assert env == {} and got.root is None and "LLEM_ENGINE_CACHE" in (got.reason or "")


def test_process_age_is_plausible() -> None:
    age, reason = timing.process_age_s()
    assert reason is None and age is not None and 0 < age < 24 * 3600


def test_phase_clock_laps_and_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = timing.PhaseClock()  # under pytest: not the harness's own process
    assert clock.startup_s is None and "longer-lived process" in (clock.startup_reason or "")
    time.sleep(0.02)
    clock.lap("config")
    clock.lap("load")
    clock.lap("load")
    t = clock.timing()
    assert t.config_s is not None and t.config_s >= 0.02
    assert t.load_s is not None and t.load_s < t.config_s and t.warmup_s is None
    monkeypatch.setattr(timing, "harness_is_main", lambda: True)
    assert timing.PhaseClock().startup_s is not None


@pytest.mark.parametrize("full_exit", ["", "1"])
def test_the_harness_process_skips_the_interpreters_teardown(
    tmp_path: Path, full_exit: str
) -> None:
    """`llem-harness run` ends with os._exit once its files are written, so atexit handlers
    (the engines' teardown) do not run, unless LLEM_HARNESS_FULL_EXIT=1; the exit code and
    error.json are those of the run either way. Called as a function, main() returns."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "experiment.json").write_text("{not json")
    code = (
        "import atexit, sys; atexit.register(lambda: print('teardown ran', flush=True)); "
        "from llem_harness.cli import main; sys.argv = ['llem-harness', 'run', sys.argv[1]]; "
        "raise SystemExit(main())"
    )
    env = {**os.environ, "LLEM_HARNESS_FULL_EXIT": full_exit}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2, proc.stderr  # a config error
    assert (run_dir / "error.json").exists()
    assert ("teardown ran" in proc.stdout) == (full_exit == "1")
    from llem_harness.cli import main

    assert main(["run", str(run_dir)]) == 2  # in-process: returns, no exit
