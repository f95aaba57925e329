"""Chaos through the real Docker engine, longer than the CI test (issue 34, item 1).

A study of `--runs` trivial runs (tiny model, 1 prompt, 1 output token, no warmup; two batch
sizes, the rest cycles) runs on the CPU test image while `--faults-per-kind` faults of each
kind strike at seeded moments (tests/docker/chaos_faults.py: `docker kill`, `docker stop`, a
dockerd restart, SIGTERM and SIGKILL of llem-docker, a full disk under the results folder),
one per attempt; the study is resumed after each until it completes. Then the folder is
checked (tests/docker/chaos_check.py) and the figures printed: faults by kind, resumes, runs
lost and measured twice (both must be 0), attempts recorded against those expected, wall time.

With dockerd_restart among the kinds the study runs on a private dockerd (the test image is
loaded into it first, a minute or so); with disk_full its results folder is a 64 MiB tmpfs.
Both need root. The shared engine is never restarted.

    sudo .venv/bin/python bench/chaos.py [--runs 100] [--faults-per-kind 3] [--seed 34]
        [--kinds docker_kill,sigterm,...] [--out chaos.json] [--keep DIR]

`--runner local` runs the harness as a subprocess instead (no Docker at all), with the
faults that need no engine (sigterm, sigkill, disk_full): a check of the chaos machinery
itself, and of the orchestrator's side of those faults.

Exit 0 when every check passed, 1 otherwise (the problems are printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the chaos library is shared with tests/docker/test_chaos.py

from llem_docker.store.manifest import Manifest  # noqa: E402
from tests.docker.chaos import (  # noqa: E402
    KINDS,
    ChaosRecord,
    Disk,
    FaultPlan,
    Rig,
    check_study,
    docker_containers,
    docker_is_up,
    run_until_complete,
)
from tests.docker.second_engine import SecondEngine  # noqa: E402

SWEEP = [1, 2]


def write_inputs(tmp: Path, cycles: int, runner: str, results: Path) -> tuple[Path, Path]:
    """The study file and the user config (no gaps, no baseline, CPU containers)."""
    study = tmp / "chaos.yaml"
    study.write_text(yaml.safe_dump({
        "name": "chaos", "model": "llem/tiny-llama", "weights": "dummy", "backend": "pytorch",
        "precision": "fp32", "dataset": "builtin", "n_prompts": 1, "max_input_tokens": 8,
        "max_output_tokens": 1, "warmup_runs": 0, "warmup_max_runs": 0,
        "sweep": {"batch_size": SWEEP},
        "execution": {"n_cycles": cycles, "cycle_order": "interleaved"},
    }, sort_keys=False))  # fmt: skip
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump({
        "runners": {"pytorch": runner},
        "output": {"results_dir": str(results), "model_cache_dir": str(tmp / "hf")},
        "measurement": {"baseline_seconds": 0},
        "execution": {"config_gap_seconds": 0, "cycle_gap_seconds": 0,
                      "experiment_timeout_seconds": 120},
        "docker": {"gpus": "none", "shm_size": "256m"},
    }))  # fmt: skip
    return study, config


@contextlib.contextmanager
def private_engine(image: str, wanted: bool) -> Iterator[SecondEngine | None]:
    """A private dockerd holding `image`, stopped and removed at the end (or None)."""
    if not wanted:
        yield None
        return
    engine = SecondEngine()
    try:
        engine.start()
        engine.load(image)
        yield engine
    finally:
        engine.destroy()


@contextlib.contextmanager
def results_disk(path: Path, wanted: bool) -> Iterator[Disk | None]:
    if not wanted:
        path.mkdir(parents=True, exist_ok=True)
        yield None
        return
    disk = Disk(path)
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()


def tally(record: ChaosRecord, problems: list[str]) -> dict[str, Any]:
    """The figures of one chaos run: what struck, and what the folder kept."""
    attempts = recorded = 0
    if record.study_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            recorded = sum(len(e.attempts) for e in Manifest.read(record.study_dir).runs)
    attempts = sum(len(v) for v in record.expected_attempts().values())
    causes: dict[str, dict[str, int]] = {}
    for kind, cause in record.kept_causes():
        by = causes.setdefault(kind, {})
        by[str(cause)] = by.get(str(cause), 0) + 1
    return {
        **record.summary(),
        "runs_lost": sum(p.startswith("run lost") for p in problems),
        "runs_measured_twice": sum(p.startswith("measured twice") for p in problems),
        "attempts_recorded": recorded,
        "attempts_expected": attempts,
        "causes_by_kind": causes,
        "problems": [*record.problems(), *problems],
    }


def show(figures: dict[str, Any], runs: int) -> None:
    console = Console()
    table = Table(title=f"chaos: {runs} runs, seed {figures['seed']}", title_justify="left")
    table.add_column("fault")
    table.add_column("struck", justify="right")
    table.add_column("the cause its run's `attempts` kept")
    for kind in KINDS:
        n = figures["faults_by_kind"].get(kind, 0)
        said = ", ".join(f"{c} x{k}" for c, k in figures["causes_by_kind"].get(kind, {}).items())
        table.add_row(kind, str(n), said)
    console.print(table)
    for label, key in (
        ("resumes needed", "resumes"),
        ("runs lost (must be 0)", "runs_lost"),
        ("runs measured twice (must be 0)", "runs_measured_twice"),
        ("earlier attempts recorded", "attempts_recorded"),
        ("earlier attempts expected", "attempts_expected"),
        ("wall time, s", "wall_s"),
    ):
        console.print(f"{label:34s} {figures[key]}", highlight=False)
    for p in figures["problems"]:
        console.print(f"[red]problem:[/red] {p}", highlight=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := sorted(set(kinds) - set(KINDS)):
        raise SystemExit(f"unknown fault kinds {unknown}; the kinds are {', '.join(KINDS)}")
    local = args.runner == "local"
    if local and (needs := sorted(set(kinds) & {"docker_kill", "docker_stop", "dockerd_restart"})):
        raise SystemExit(f"--runner local has no container or engine to strike: drop {needs}")
    cycles = max(1, -(-args.runs // len(SWEEP)))
    plan = FaultPlan.draw(args.seed, kinds=kinds, per_kind=args.faults_per_kind)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llem-chaos-")))
        engine = stack.enter_context(private_engine(args.image, "dockerd_restart" in kinds))
        disk = stack.enter_context(results_disk(tmp / "results", "disk_full" in kinds))
        runner = "local" if local else f"docker:{args.image}"
        study, config = write_inputs(tmp, cycles, runner, tmp / "results")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLEM_")}
        env |= {"LLEM_CONFIG": str(config), "COLUMNS": "200"}
        if engine is not None:
            env["DOCKER_HOST"] = engine.host
        host = env.get("DOCKER_HOST")
        rig = Rig(study, env, tmp / "results", tmp / "logs", cycles * len(SWEEP), engine=engine,
                  disk=disk, is_up=None if local else docker_is_up(host))  # fmt: skip
        record = run_until_complete(rig, plan, max_resumes=2 + len(plan.faults) // 2)
        left = None if local else docker_containers(host)
        problems = []
        if record.study_dir is not None:
            expected = record.expected_attempts()
            problems = check_study(record.study_dir, attempts=expected, containers=left)
        if args.keep is not None and record.study_dir is not None:
            shutil.copytree(record.study_dir, args.keep / record.study_dir.name)
            shutil.copytree(tmp / "logs", args.keep / "logs")
        return {**tally(record, problems), "runs": cycles * len(SWEEP), "runner": runner}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs in the study (even)")
    parser.add_argument("--faults-per-kind", type=int, default=3)
    parser.add_argument("--seed", type=int, default=34)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--image", default="llem-test/pytorch:cpu")
    parser.add_argument("--runner", choices=["docker", "local"], default="docker")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="copy the folder and logs here")
    args = parser.parse_args()
    figures = run(args)
    show(figures, figures["runs"])
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(0 if not figures["problems"] else 1)


if __name__ == "__main__":
    main()
