"""A SIGKILL of llem-docker leaves no harness behind with the local runner: the harness is
its own child, tied to it (LLEM_HOST_PID, PR_SET_PDEATHSIG), so it dies with it rather than
going on to write into the folder that `--resume` makes for the run's next attempt (found by
the chaos benchmark, `bench/README.md`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("llem-docker"))


def harnesses(folder: Path) -> list[int]:
    """The pids of harness processes running a run of `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"llem_harness" in c or b"llem-harness" in c for c in cmd) and any(
            str(folder).encode() in c for c in cmd
        ):
            found.append(int(proc.name))
    return found


def test_the_harness_dies_with_a_killed_llem_docker(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: orphan\nmodel: llem/tiny-llama\nweights: dummy\nbackend: pytorch\nprecision: fp32\n"
        "n_prompts: 64\nmax_output_tokens: 256\nwarmup_runs: 5\nwarmup_max_runs: 5\n"
        "execution: {n_cycles: 1}\n"
    )
    config = tmp_path / "llem.yaml"
    config.write_text("measurement: {baseline_seconds: 0}\n")
    results = tmp_path / "r"
    env = {**os.environ, "LLEM_CONFIG": str(config)}
    cli = subprocess.Popen(
        [EXE, "run", str(study), "--runner", "local", "--results-dir", str(results), "--yes"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline, pids = time.monotonic() + 120, []
    while time.monotonic() < deadline and not pids:
        time.sleep(0.2)
        pids = harnesses(results) if results.exists() else []
    assert pids, "the harness never started"
    time.sleep(2)  # well into its run
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and harnesses(results):
        time.sleep(0.2)
    left = harnesses(results)
    for pid in left:  # never leave one behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"harness processes outlived llem-docker: {left}"
    (folder,) = results.iterdir()
    (run,) = json.loads((folder / "manifest.json").read_text())["runs"]
    assert run["state"] == "running"  # as the kill left it: --resume records OrchestratorLost
    # killed outright, it wrote nothing more: an orphan would have gone on, failed on its
    # closed stdout and written error.json (into the folder a resume makes next, had it run)
    time.sleep(1)
    assert not (folder / "runs" / run["run_id"] / "error.json").exists()
