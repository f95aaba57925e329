"""Per-run orchestration overhead of the Docker runner, against a bare `docker run`.

A study of N trivial runs (tiny model, 1 prompt, 1 output token) goes through the real
orchestrator and Docker runner. Overhead per run = (study wall time - the time the harness
processes themselves ran, from the engine's StartedAt..FinishedAt) / N: what llem-docker adds
around each container (plan, run folders, manifest writes, create, start, log streaming,
wait, remove, StudyResult). It is compared, in the same run, with the median wall time of
`docker run --rm IMAGE true`, which pays the engine's own create/start/remove cost.

Target: overhead <= 1.5 x the bare `docker run`.

    .venv/bin/python bench/docker_overhead.py [--runs 10] [--image llem-test/pytorch:cpu]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.loop import execute_study
from llem_docker.execution.runners import RunOutcome, make_runner
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study


def bare_docker_run(image: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", image, "true"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


class Recording:
    """Wraps a runner and keeps every outcome."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.outcomes: list[RunOutcome] = []

    def info(self) -> Any:
        return self.inner.info()

    def run(self, run_dir: Path, *, timeout_s: float, on_event: Any) -> RunOutcome:
        outcome: RunOutcome = self.inner.run(run_dir, timeout_s=timeout_s, on_event=on_event)
        self.outcomes.append(outcome)
        return outcome


def study_overhead(image: str, n: int, tmp: Path) -> dict[str, Any]:
    study_file = tmp / "trivial.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "name": "trivial",
                "model": "llem/tiny-llama",
                "weights": "dummy",
                "backend": "pytorch",
                "precision": "fp32",
                "dataset": "builtin",
                "n_prompts": 1,
                "max_input_tokens": 8,
                "max_output_tokens": 1,
                "warmup_runs": 1,
                "warmup_max_runs": 1,
                "execution": {"n_cycles": n, "cycle_order": "sequential"},
            }
        )
    )
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "runners": {"pytorch": f"docker:{image}"},
                "output": {"results_dir": str(tmp / "results"), "model_cache_dir": str(tmp / "hf")},
                "measurement": {"baseline_seconds": 0},
                "execution": {"config_gap_seconds": 0, "cycle_gap_seconds": 0},
                "docker": {"gpus": "none"},
            }
        )
    )
    recorders: list[Recording] = []

    def factory(spec: RunnerSpec, settings: Settings) -> Any:
        rec = Recording(make_runner(spec, settings))
        recorders.append(rec)
        return rec

    t0 = time.perf_counter()
    study = load_study(study_file)
    plan = plan_study(study)
    settings = Settings.load({"LLEM_CONFIG": str(config)})
    outcome = execute_study(
        plan,
        study,
        settings,
        settings.runners(sorted(plan.counts())),
        console=Console(file=io.StringIO()),
        as_json=False,
        runner_factory=factory,
    )
    wall = time.perf_counter() - t0
    assert outcome.state == "completed", outcome.state
    inside = [o.process_s for r in recorders for o in r.outcomes]
    assert len(inside) == n and all(x is not None for x in inside), inside
    harness = sum(x for x in inside if x is not None)
    return {
        "study_wall_s": wall,
        "harness_inside_s": harness,
        "harness_per_run_s": harness / n,
        "overhead_per_run_s": (wall - harness) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", default="llem-test/pytorch:cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    bare_docker_run(args.image, 1)  # warm the engine's caches for both sides
    bare = bare_docker_run(args.image, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        figures = study_overhead(args.image, args.runs, Path(tmp))
    bare_median = statistics.median(bare)
    figures |= {
        "runs": args.runs,
        "image": args.image,
        "bare_docker_run_median_s": bare_median,
        "bare_docker_run_min_s": min(bare),
        "bare_docker_run_max_s": max(bare),
        "ratio_overhead_to_bare": figures["overhead_per_run_s"] / bare_median,
        "target_ratio": 1.5,
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    ok = figures["ratio_overhead_to_bare"] <= 1.5
    print(
        f"overhead per run {figures['overhead_per_run_s']:.3f} s vs bare docker run "
        f"{bare_median:.3f} s: ratio {figures['ratio_overhead_to_bare']:.2f} "
        f"({'meets' if ok else 'misses'} the 1.5 target)"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
