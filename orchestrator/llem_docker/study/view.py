"""Show a StudyPlan: a rich table for people, JSON for scripts, and a wall-time estimate."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from llem_docker.config.settings import RunnerSpec
from llem_docker.study.plan import PlannedRun, StudyPlan, gap_before
from llem_harness.host_api import ExperimentConfig, engine

MAX_TABLE_ROWS = 200
# Assumptions behind the rough per-run estimate; shown beside it so nobody mistakes it for data.
STARTUP_S = {"local": 10.0, "docker": 30.0, "apptainer": 30.0, "singularity": 30.0}
DECODE_STEP_S = 0.025


@dataclass(frozen=True)
class Estimate:
    gaps_s: float
    runs_s: float
    timeout_bound_s: float

    @property
    def total_s(self) -> float:
        return self.gaps_s + self.runs_s


def estimate(
    plan: StudyPlan,
    runners: dict[str, RunnerSpec],
    config_gap_s: float,
    cycle_gap_s: float,
    timeout_s: float,
) -> Estimate:
    gaps = 0.0
    busy = 0.0
    prev: PlannedRun | None = None
    for run in plan.runs:
        gaps += gap_before(prev, run, plan.execution.cycle_order, config_gap_s, cycle_gap_s)
        gaps += config_gap_s * (run.most_runs - 1)  # between a search's probes
        # A run never outlasts its timeout: the rough figure is capped there.
        spec = runners[run.point.config.backend]
        busy += min(run_estimate_s(run, spec, _grow_to(plan)), timeout_s) * run.most_runs
        prev = run
    return Estimate(gaps, busy, gaps + timeout_s * plan.most_runs)


def run_estimate_s(run: PlannedRun, runner: RunnerSpec, grow_to_s: float = 0.0) -> float:
    """Container start + (warmups + measured pass) x decode steps x an assumed step time. The
    prompts go through in waves of the engine's concurrency (pytorch's batch size, vLLM's
    max_num_seqs, TensorRT-LLM's max_batch_size). An offline pass shorter than `grow_to_s`
    (the publication profile's window) is repeated in the measured pass until it is not, as
    the harness does. A serving run lasts at least as long as its arrivals take:
    n_requests / request_rate, or duration_s."""
    cfg = run.point.config
    one = pass_estimate_s(cfg)
    reps = window_repeats(one, grow_to_s) if cfg.scenario == "offline" else 1
    busy = cfg.warmup_runs * one + one * reps
    if cfg.scenario == "serving":
        opts = cfg.serving_options()
        rate = opts.rate
        if opts.search is not None:  # a probe at the range's middle (geometric)
            rate = math.sqrt(opts.search.rate[0] * opts.search.rate[1])
        sending = opts.duration_s or ((opts.n_requests or cfg.n_prompts) / rate if rate else 0.0)
        busy = max(busy, sending + cfg.warmup_runs * cfg.max_output_tokens * DECODE_STEP_S)
    return STARTUP_S[runner.kind] + busy


def pass_estimate_s(cfg: ExperimentConfig) -> float:
    """One pass over the prompts: its waves x decode steps x the assumed step time."""
    batches = -(-cfg.n_prompts // engine(cfg.backend).concurrency(cfg))
    return batches * cfg.max_output_tokens * DECODE_STEP_S


def _grow_to(plan: StudyPlan) -> float:
    return plan.validity.min_window_s if plan.validity.grow_window else 0.0


def validity_lines(plan: StudyPlan) -> list[str]:
    """What the dry run says of the profile's thresholds: the minimums, the windows the
    harness will grow (by the rough estimate), and a cycle count under the minimum."""
    v, n = plan.validity, plan.execution.n_cycles
    lines = [
        f"validity: the {v.profile} profile's thresholds (windows ≥ {v.min_window_s:g} s, "
        f"≥ {v.min_cycles} cycles, cycle CV ≤ {v.max_cycle_cv:.0%}; docs/validity.md)"
    ]
    if n < v.min_cycles:
        lines.append(
            f"[yellow]{n} cycle(s) < the {v.profile} profile's {v.min_cycles}: every point "
            "will be invalid[/yellow] (raise --cycles)"
        )
    if v.grow_window:
        offline = [p for p in plan.points if p.config.scenario == "offline"]
        reps = [window_repeats(pass_estimate_s(p.config), v.min_window_s) for p in offline]
        grown = [k for k in reps if k > 1]
        if grown:
            most = max(grown)
            lines.append(
                f"{len(grown)} of {len(offline)} offline points have a pass estimated under "
                f"{v.min_window_s:g} s: their measured window holds whole passes, one after "
                f"another, until it has lasted that long (up to ~{most} passes by this "
                "estimate; each run counts its own and says so in result.json)"
            )
    return lines


def window_repeats(pass_s: float, grow_to_s: float) -> int:
    """How many passes' worth the measured window holds to reach `grow_to_s` (1: as given)."""
    return max(1, math.ceil(grow_to_s / pass_s)) if pass_s > 0 and grow_to_s > 0 else 1


def human_s(seconds: float) -> str:
    seconds = round(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d"] * bool(d) + [f"{h}h"] * bool(h) + [f"{m}m"] * bool(m)
    return " ".join(parts + [f"{s}s"] * (bool(s) or not parts))


def plan_json(plan: StudyPlan, runners: dict[str, RunnerSpec]) -> list[dict[str, Any]]:
    return [
        {
            "index": r.index,
            "cycle": r.cycle,
            "backend": r.point.config.backend,
            "run_id": r.run_id,
            "config_hash": r.point.config_hash,
            "swept": r.point.swept,
            "origin": r.point.origin,
            "config": r.point.config.canonical(),
            "runner": _runner_json(runners[r.point.config.backend]),
            **({"search": {"most_probes": r.most_runs}} if r.search is not None else {}),
        }
        for r in plan.runs
    ]


def _runner_json(spec: RunnerSpec) -> dict[str, Any]:
    return {"kind": spec.kind, "target": spec.target, "spec": spec.label, "source": spec.source}


def print_plan_json(plan: StudyPlan, runners: dict[str, RunnerSpec]) -> None:
    print(json.dumps(plan_json(plan, runners), indent=2))


def print_plan(
    console: Console,
    plan: StudyPlan,
    runners: dict[str, RunnerSpec],
    est: Estimate,
    config_gap_s: float,
    cycle_gap_s: float,
) -> None:
    ex = plan.execution
    keys = [k for k in plan.swept_keys if k != "backend"]
    searches = len(plan.searches)
    runs = f"at most {plan.most_runs} runs" if searches else f"{len(plan.runs)} runs"
    table = Table(title=f"Study {plan.name!r}: {runs}", title_justify="left")
    extra = ("runs",) if searches else ()
    for col in ("#", "cycle", "backend", *keys, *extra, "from", "runner"):
        table.add_column(col, justify="right" if col in ("#", "cycle") else "left")
    for run in plan.runs[:MAX_TABLE_ROWS]:
        swept = run.point.swept
        cells = [_cell(swept.get(k, "")) for k in keys]
        spec = runners[run.point.config.backend]
        table.add_row(
            str(run.index),
            str(run.cycle),
            run.point.config.backend,
            *cells,
            *(() if not searches else (f"≤ {run.most_runs} probes" if run.search else "1",)),
            run.point.origin,
            spec.kind,
        )
    console.print(table)
    if len(plan.runs) > MAX_TABLE_ROWS:
        console.print(f"… {len(plan.runs) - MAX_TABLE_ROWS} more rows (use --json for all)")
    counts = plan.counts()
    per = ", ".join(
        f"{b}: {counted(c, 'config')} / {counted(n, 'run')}" for b, (c, n) in counts.items()
    )
    head = f"[bold]{counted(len(plan.points), 'config')} × {counted(ex.n_cycles, 'cycle')} = "
    if not searches:
        console.print(f"{head}{counted(len(plan.runs), 'run')}[/bold] ({per})")
    else:
        parts = [counted(len(plan.runs) - searches, "run")] * (len(plan.runs) > searches)
        parts.append(f"{searches} capacity search" + "es" * (searches != 1))
        console.print(
            f"{head}{' + '.join(parts)}[/bold]: at most {plan.most_runs} runs ({per}; a search "
            "counts its most probes, docs/capacity.md)"
        )
    console.print(f"order: {ex.cycle_order} (seed {ex.seed}); design hash {plan.design_hash[:16]}")
    for backend, spec in runners.items():
        if backend in counts:
            console.print(f"runner {backend}: {spec.label} (from {spec.source})")
    for line in validity_lines(plan):
        console.print(line)
    console.print(
        f"estimated wall time: ~{human_s(est.total_s)} = gaps {human_s(est.gaps_s)} "
        f"(config gap {config_gap_s:g}s, cycle gap {cycle_gap_s:g}s) + runs ~{human_s(est.runs_s)} "
        f"[dim](rough: assumes {_startups(runners, counts)} and "
        f"{DECODE_STEP_S * 1000:g} ms per decode step, each run capped at its timeout)[/dim]; "
        f"at most {human_s(est.timeout_bound_s)} (every run stopped at its timeout)"
    )


def _startups(runners: dict[str, RunnerSpec], counts: dict[str, Any]) -> str:
    kinds = sorted({runners[b].kind for b in counts})
    return ", ".join(f"{STARTUP_S[k]:g}s start per {k} run" for k in kinds)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def counted(count: int, noun: str) -> str:
    """`1 config`, `2 configs`: the plan's counts read as English."""
    return f"{count} {noun}{'s' * (count != 1)}"
