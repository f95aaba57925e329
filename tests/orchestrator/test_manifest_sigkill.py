"""A SIGKILL of llem-docker in the middle of a manifest write never leaves a manifest that
cannot be read (issue 34, item 1). The write is atomic (a temporary file, fsync, rename), so a
reader sees the last state reached; what a killed writer leaves is a `.manifest.json.*.tmp`,
which the next `--resume` sweeps.

The chaos test through Docker kills llem-docker at random moments, which seldom fall inside a
write; here a writer is stopped inside one on purpose (its fsync blocks), and others are
killed at seeded random moments of a tight write loop."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llem_docker.execution.resume import sweep_temporary
from llem_docker.store.manifest import Manifest

pytestmark = pytest.mark.slow

# Writes the manifest of a 400-run study over and over, one run's transition per write, and
# says "ready" after the first. With `--block-fsync`, the second write's fsync never returns:
# the temporary file is whole but not yet renamed over manifest.json.
WRITER = r"""
import os, sys, time
from pathlib import Path
from llem_docker.config.settings import RunnerSpec
from llem_docker.store.manifest import Manifest
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study

study_dir, source = Path(sys.argv[1]), Path(sys.argv[2])
plan = plan_study(load_study(source))
m = Manifest.new(plan, study_dir.name, None, {"pytorch": RunnerSpec("local", None, "t")})
m.write(study_dir)
print("ready", flush=True)
if "--block-fsync" in sys.argv:
    def blocked(fd):
        print("in fsync", flush=True)
        time.sleep(600)
    os.fsync = blocked
i = 0
while True:
    run = m.runs[i % len(m.runs)].run_id
    m.start_run(study_dir, run)
    m.end_run(study_dir, run, "completed", exit_code=0)
    i += 1
"""


def _writer(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], Path]:
    source = tmp_path / "big.yaml"
    source.write_text(
        "name: big\nmodel: llem/tiny-llama\nbackend: pytorch\nsweep: {batch_size: [1, 2, 4, 8]}\n"
        "execution: {n_cycles: 100, cycle_order: interleaved}\n"
    )
    study_dir = tmp_path / "big_1"
    study_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(study_dir), str(source), *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, study_dir


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_killed_inside_a_write_the_last_state_stays_readable(tmp_path: Path) -> None:
    proc, study_dir = _writer(tmp_path, "--block-fsync")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "in fsync"
        before = Manifest.read(study_dir)
    finally:
        _kill(proc)
    after = Manifest.read(study_dir)  # the state before the write it was killed in
    assert after == before and {e.state for e in after.runs} == {"pending"}
    torn = sorted(p.name for p in study_dir.glob(".manifest.json.*.tmp"))
    assert len(torn) == 1  # the write it died in: whole, never renamed
    assert json.loads((study_dir / torn[0]).read_text())["runs"][0]["state"] == "running"
    assert [p.name for p in sweep_temporary(study_dir)] == torn
    assert sorted(p.name for p in study_dir.iterdir()) == ["manifest.json"]


def test_killed_at_random_moments_of_a_write_loop(tmp_path: Path) -> None:
    rng = random.Random(34)
    for _ in range(6):
        proc, study_dir = _writer(tmp_path)
        try:
            time.sleep(rng.uniform(0.05, 0.5))
        finally:
            _kill(proc)
        m = Manifest.read(study_dir)  # raises if the file were torn
        assert len(m.runs) == 400 and m.state == "running"
        sweep_temporary(study_dir)
