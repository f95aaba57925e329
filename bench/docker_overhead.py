"""Per-run orchestration overhead of the Docker runner, against a bare `docker run`.

A study of N trivial runs (tiny model, 1 prompt, 1 output token) goes through the real
orchestrator and Docker runner. Overhead per run = (study wall time - the time the harness
processes themselves ran, from the engine's StartedAt..FinishedAt) / N: what llem-docker adds
around each container (plan, run folders, manifest writes, create, start, log streaming,
wait, remove, StudyResult). It is compared, in the same run, with the median wall time of
`docker run --rm IMAGE true`, which pays the engine's own create/start/remove cost.

Each round measures two user configs (`--modes`): `default` (the default user config: the
study's dummy weights of a shipped config need no hub, so `docker.network: auto` gives its
containers no network, `--network none`; a tree from before that setting gives them the
engine's default bridge) and `bridge` (`docker.network: bridge`: what a run that may need the
hub pays). Each mode's ratio is against the bare `docker run` of the same network (like for
like), and also against the plain `docker run --rm IMAGE true` (the engine's default, the
issue's reference).

Target: overhead <= 1.1 x the bare `docker run` (issue 34), flat in the number of runs.

`--tail-of 500` also measures a study of 500 runs whose first 490 are already done: the last
10 are run through `--resume` (their predecessors' results are copies of a real run's, their
identities set), so the per-run overhead includes everything that grows with the runs already
recorded (the manifest's rewrites, the resume's checks, the StudyResult over 500 runs).
`--before TREE` runs the same measurements with another checkout's orchestrator (its
`orchestrator/` and `harness/` first on PYTHONPATH) in the same session, alternating with this
tree's, `--rounds` times each, so before and after are measured in one run.

    .venv/bin/python bench/docker_overhead.py [--runs 10] [--image llem-test/pytorch:cpu]
        [--modes default,bridge] [--rounds 3] [--tail-of 500] [--before ../old-checkout]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.loop import execute_study
from llem_docker.execution.prepare import make_study_dir, prepare_run
from llem_docker.execution.runners import RunOutcome, make_runner
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest, utc_now
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.host_api import ExperimentResult, MeasurementSettings, RunRequest

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.1


MODES = ("default", "bridge")


def bare_docker_run(image: str, n: int, network: str | None = None) -> list[float]:
    net = [] if network is None else ["--network", network]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        cmd = ["docker", "run", "--rm", *net, image, "true"]
        subprocess.run(cmd, check=True, capture_output=True)
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


def _files(tmp: Path, image: str, cycles: int, bridge: bool = False) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    study_file = tmp / f"trivial-{cycles}.yaml"
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
                "execution": {"n_cycles": cycles, "cycle_order": "sequential"},
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
                "docker": {"gpus": "none", **({"network": "bridge"} if bridge else {})},
            }
        )
    )
    return study_file, config


def _timed(
    study_file: Path, config: Path, n: int, resume: tuple[Path, Manifest] | None = None
) -> dict[str, Any]:
    """The study (or the resumed rest of it) through the real loop: wall time, and the time
    the harness processes ran inside their containers."""
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
        resume=resume,
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
        "steady_overhead_per_run_s": (_span(outcome.study_dir, n) - harness) / n,
        "study_dir": str(outcome.study_dir),
    }


def _span(study_dir: Path, n: int) -> float:
    """From the first of the last `n` runs' start to the last one's end (the manifest's
    times): the runs and everything between them, without the study's own start and end
    (connecting, planning, resuming, the StudyResult), which a longer study spreads thinner."""
    runs = sorted(Manifest.read(study_dir).runs, key=lambda e: e.started_at or "")[-n:]
    first = datetime.fromisoformat(str(runs[0].started_at))
    last = max(datetime.fromisoformat(str(e.ended_at)) for e in runs)
    return (last - first).total_seconds()


def study_overhead(image: str, n: int, tmp: Path, bridge: bool) -> dict[str, Any]:
    study_file, config = _files(tmp, image, n, bridge)
    return _timed(study_file, config, n)


def tail_overhead(
    image: str, total: int, tail: int, template: Path, tmp: Path, bridge: bool
) -> dict[str, Any]:
    """A `total`-run study whose first `total - tail` runs are recorded as done (copies of
    `template`, a real run's result.json, with their own identities), resumed for the rest."""
    study_file, config = _files(tmp, image, total, bridge)
    study = load_study(study_file)
    plan = plan_study(study)
    settings = Settings.load({"LLEM_CONFIG": str(config)})
    runners = settings.runners(["pytorch"])
    folder = make_study_dir(tmp / "results", plan.name, str(study_file))
    manifest = Manifest.new(plan, folder.name, str(study_file), runners)
    live = {"pytorch": make_runner(runners["pytorch"], settings)}
    base = ExperimentResult.model_validate_json(template.read_text())
    for run in plan.runs[: total - tail]:
        prepare_run(folder, plan, run, live, MeasurementSettings(), {})
        req = RunRequest.model_validate_json(
            StudyDir(folder).run(run.run_id).experiment.read_text()
        )
        res = base.model_copy(update={"run": req.run, "experiment_id": run.run_id})
        StudyDir(folder).run(run.run_id).result.write_text(res.model_dump_json())
        entry = manifest.entry(run.run_id)
        entry.state, entry.started_at, entry.ended_at = "completed", utc_now(), utc_now()
    manifest.state = "interrupted"
    manifest.write(folder)
    figures = _timed(study_file, config, tail, resume=(folder, manifest))
    return {f"tail_{k}": v for k, v in figures.items()} | {"tail_of": total, "tail": tail}


def _network(mode: str) -> str:
    """The network this tree gives the bench study's runs in `mode`."""
    from llem_docker.config.user import DockerSettings

    if "network" not in DockerSettings.model_fields:  # a tree from before docker.network
        return "bridge"
    return "bridge" if mode == "bridge" else "none"  # auto: dummy weights, a shipped config


def measure(image: str, runs: int, tail_of: int | None, mode: str) -> dict[str, Any]:
    """One round of one mode: the bare `docker run`s (the engine's default network and
    none), the study, and the resumed tail of a long one."""
    bridge, network = mode == "bridge", _network(mode)
    bare_docker_run(image, 1)  # warm the engine's caches for both sides
    plain = bare_docker_run(image, runs)
    isolated = bare_docker_run(image, runs, "none")
    with tempfile.TemporaryDirectory() as tmp:
        figures = study_overhead(image, runs, Path(tmp) / "a", bridge)
        if tail_of:
            first = sorted(Path(figures["study_dir"], "runs").iterdir())[0] / "result.json"
            figures |= tail_overhead(image, tail_of, runs, first, Path(tmp) / "b", bridge)
    same = isolated if network == "none" else plain
    bare, reference = statistics.median(same), statistics.median(plain)
    figures |= {
        "mode": mode,
        "network": network,
        "runs": runs,
        "image": image,
        "bare_docker_run_median_s": bare,
        "bare_docker_run_min_s": min(same),
        "bare_docker_run_max_s": max(same),
        "plain_docker_run_median_s": reference,
        "none_docker_run_median_s": statistics.median(isolated),
        "ratio_overhead_to_bare": figures["overhead_per_run_s"] / bare,
        "ratio_overhead_to_plain": figures["overhead_per_run_s"] / reference,
        "target_ratio": TARGET,
    }
    if tail_of:
        figures["tail_ratio_overhead_to_bare"] = figures["tail_overhead_per_run_s"] / bare
    return figures


def _compare(before: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """This tree and `before`, alternating, each round in its own process."""
    rows = []
    for k in range(args.rounds):
        for label, tree in (("before", before.resolve()), ("after", REPO)):
            env = {**os.environ, "PYTHONPATH": f"{tree}/orchestrator:{tree}/harness"}
            cmd = [sys.executable, __file__, "--runs", str(args.runs), "--image", args.image]
            modes = args.modes if label == "after" else "default"  # (before: always bridge)
            cmd += ["--json-only", "--rounds", "1", "--modes", modes]
            cmd += ["--tail-of", str(args.tail_of)] if args.tail_of else []
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for row in json.loads(done.stdout):
                row |= {"tree": label, "round": k + 1}
                rows.append(row)
                print(_line(row), flush=True)
    return rows


def _line(f: dict[str, Any]) -> str:
    tail = ""
    if "tail_overhead_per_run_s" in f:
        tail = (f"; the last {f['tail']} of {f['tail_of']} runs: between runs "
                f"{f['tail_steady_overhead_per_run_s']:.3f} s/run, with the resume and the "
                f"StudyResult {f['tail_overhead_per_run_s']:.3f} s/run")  # fmt: skip
    who = f"{f['tree']} " if "tree" in f else ""
    net = "" if f["network"] == "bridge" else f" --network {f['network']}"
    return (
        f"{who}round {f['round']}, {f['mode']}: overhead per run {f['overhead_per_run_s']:.3f} s "
        f"vs bare docker run{net} {f['bare_docker_run_median_s']:.3f} s: ratio "
        f"{f['ratio_overhead_to_bare']:.2f} (against a plain docker run "
        f"{f['ratio_overhead_to_plain']:.2f}; between runs "
        f"{f['steady_overhead_per_run_s']:.3f} s/run){tail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", default="llem-test/pytorch:cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--tail-of", type=int, default=None, help="e.g. 500 (see above)")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES), help="default,bridge (see above)")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: a comma-separated list of {', '.join(MODES)}")
    if args.before is not None:
        rows = _compare(args.before, args)
    else:
        rows = []
        for k in range(args.rounds):  # the modes alternate, so that drift hits both alike
            for mode in modes:
                rows.append(measure(args.image, args.runs, args.tail_of, mode) | {"round": k + 1})
                if not args.json_only:
                    print(_line(rows[-1]), flush=True)
    if args.json_only:
        print(json.dumps(rows))
        return
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    sys.exit(0 if _summary(rows) else 1)


def _summary(rows: list[dict[str, Any]]) -> bool:
    """Each mode's mean and spread over the rounds (this tree's); True when every round of
    every mode meets the target like for like."""
    ok = True
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode and r.get("tree", "after") == "after"]
        if not mine:
            continue
        over = [r["overhead_per_run_s"] for r in mine]
        ratios = [r["ratio_overhead_to_bare"] for r in mine]
        spread = statistics.stdev(over) if len(over) > 1 else 0.0
        print(
            f"{mode}: overhead per run mean {statistics.mean(over):.3f} s (sd {spread:.3f}, "
            f"{len(over)} rounds); like-for-like ratios {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"every round within {TARGET}: {all(x <= TARGET for x in ratios)}"
        )
        ok = ok and all(x <= TARGET for x in ratios)
    return ok


if __name__ == "__main__":
    main()
