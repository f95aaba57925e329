"""Compile-cache set-up and per-phase timing, without running an engine."""

from __future__ import annotations

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
    assert got["root"] == str(tmp_path)
    assert got["vars"]["VLLM_CACHE_ROOT"] == {"value": "/elsewhere", "source": "user"}
    assert got["vars"]["TRITON_CACHE_DIR"]["source"] == "harness"
    assert (tmp_path / "inductor").is_dir()


def test_no_engine_cache_leaves_the_defaults_and_says_so() -> None:
    env: dict[str, str] = {}
    got = configure_compile_caches(env)
    assert env == {} and got["root"] is None and "LLEM_ENGINE_CACHE" in got["reason"]


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
