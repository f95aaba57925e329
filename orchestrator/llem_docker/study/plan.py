"""Study expansion: StudyConfig -> experiment points -> ordered runs. Pure functions.

Count = sum over backends of (product of universal axes x product of that backend's scoped
axes), plus the explicit experiments, times n_cycles.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from llem_docker.errors import ConfigError
from llem_docker.study.model import CycleOrder, ExecutionConfig, StudyConfig, deep_merge, set_path
from llem_harness.host_api import POLICIES, CapacitySearch, ExperimentConfig, ValidityPolicy


@dataclass(frozen=True)
class ExperimentPoint:
    """One distinct experiment of the study (before cycles)."""

    config: ExperimentConfig
    config_hash: str
    swept: dict[str, Any]  # the study-level choices that define this point, as written
    origin: str  # "grid" (top level x sweep) or "experiments[i]" (listed)


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan, or (where its point asks for `serving.search`) one capacity
    search, which runs as probes made while it goes (`probe`)."""

    index: int  # 1-based position in execution order
    cycle: int  # 1-based
    point: ExperimentPoint
    probe: int | None = None  # a search's probe: its number, 1-based
    search_id: str | None = None  # ... and the search's id

    @property
    def run_id(self) -> str:
        if self.probe is not None:
            return f"{self.search_id}_p{self.probe}"
        cfg, h = self.point.config, self.point.config_hash
        return f"{self.index:03d}_c{self.cycle}_{cfg.backend}_{h[:8]}"

    @property
    def search(self) -> CapacitySearch | None:
        """The capacity search this planned run stands for (None: an ordinary run)."""
        return self.point.config.capacity_search() if self.probe is None else None

    @property
    def most_runs(self) -> int:
        """1, or the most probes its search can take."""
        return 1 if (search := self.search) is None else search.most_probes()

    def probe_run(self, number: int, rate: float) -> PlannedRun:
        """The search's probe `number`, at `rate`: an ordinary serving run of its own config
        (the search removed, the rate set), so its config hash is that of a plain run."""
        config = self.point.config.at_rate(rate)
        swept = {**self.point.swept, "serving.request_rate": rate}
        point = ExperimentPoint(config, config.config_hash(), swept, self.point.origin)
        return PlannedRun(self.index, self.cycle, point, number, self.run_id)


@dataclass(frozen=True)
class StudyPlan:
    name: str
    design_hash: str
    execution: ExecutionConfig  # effective, with the seed used for shuffling filled in
    points: tuple[ExperimentPoint, ...]
    runs: tuple[PlannedRun, ...]
    swept_keys: tuple[str, ...] = field(default=())
    # the thresholds its runs and points are judged by: its execution profile's
    validity: ValidityPolicy = field(default_factory=lambda: POLICIES["standard"])

    @property
    def searches(self) -> tuple[PlannedRun, ...]:
        return tuple(r for r in self.runs if r.search is not None)

    @property
    def most_runs(self) -> int:
        """The runs it can take: a search counts its most probes."""
        return sum(r.most_runs for r in self.runs)

    def counts(self) -> dict[str, tuple[int, int]]:
        """backend -> (configs, runs); a search counts its most probes."""
        out: dict[str, tuple[int, int]] = {}
        for p in self.points:
            c, _ = out.get(p.config.backend, (0, 0))
            out[p.config.backend] = (c + 1, 0)
        for r in self.runs:
            c, n = out[r.point.config.backend]
            out[r.point.config.backend] = (c, n + r.most_runs)
        return out


def expand_points(study: StudyConfig) -> list[ExperimentPoint]:
    """All distinct experiment points, in declaration order."""
    points: list[ExperimentPoint] = []
    for backend in study.backends if study.has_grid else ():
        axes = study.axes_for(backend)
        base = study.base_for(backend)
        multi = len(study.backends) > 1
        for combo in itertools.product(*(a.values for a in axes)):
            data = base if not axes else {k: v for k, v in base.items()}
            swept: dict[str, Any] = {"backend": backend} if multi else {}
            for axis, value in zip(axes, combo, strict=True):
                set_path(data, axis.path, value)
                swept[axis.key] = value
            points.append(_point(study, data, swept, "grid"))
    for i, exp in enumerate(study.experiments):
        backend = str(exp.get("backend") or study.backends[0])
        data = deep_merge(study.base_for(backend), exp)
        points.append(_point(study, data, {"backend": backend, **exp}, f"experiments[{i}]"))
    seen: dict[str, ExperimentPoint] = {}
    for p in points:
        if p.config_hash in seen:
            raise ConfigError(
                f"{p.origin} ({_describe(p.swept)}) is identical to an earlier point "
                f"({_describe(seen[p.config_hash].swept) or seen[p.config_hash].origin})",
                source=study.source,
                key=_origin_key(p.origin),
                fix="remove the duplicate; use execution.n_cycles to repeat a measurement",
            )
        seen[p.config_hash] = p
    return points


def _point(
    study: StudyConfig, data: dict[str, Any], swept: dict[str, Any], origin: str
) -> ExperimentPoint:
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"the combination {_describe(swept) or origin} is invalid: "
            + (f"{loc}: " if loc else "")
            + msg,
            source=study.source,
            key=_origin_key(origin),
            fix="drop the offending value from the sweep, scope the axis to the backends it "
            "fits (`<backend>.quantization: [...]`), or move that point to `experiments:`",
        ) from None
    return ExperimentPoint(config, config.config_hash(), swept, origin)


def _origin_key(origin: str) -> str:
    return "sweep" if origin == "grid" else origin


def _describe(swept: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in swept.items())


def design_hash(points: list[ExperimentPoint]) -> str:
    """Hash of the expanded experiment set; independent of order and of `execution`."""
    blob = "\n".join(sorted(p.config_hash for p in points))
    return hashlib.sha256(blob.encode()).hexdigest()


def schedule(n_points: int, n_cycles: int, order: CycleOrder, seed: int) -> list[tuple[int, int]]:
    """Execution order as (point index, cycle) pairs, cycles 1-based.

    sequential:  A1 A2 A3 B1 B2 B3 ...   interleaved: A1 B1 ... A2 B2 ...
    shuffled:    every cycle holds each point once, in a seeded permutation per cycle.
    """
    if order == "sequential":
        return [(p, c) for p in range(n_points) for c in range(1, n_cycles + 1)]
    if order == "interleaved":
        return [(p, c) for c in range(1, n_cycles + 1) for p in range(n_points)]
    rng = random.Random(seed)
    out: list[tuple[int, int]] = []
    for c in range(1, n_cycles + 1):
        perm = list(range(n_points))
        rng.shuffle(perm)
        out += [(p, c) for p in perm]
    return out


def count_runs(study: StudyConfig, n_cycles: int) -> int:
    """The number of runs, from the axis lengths alone: nothing is expanded."""
    configs = sum(study.grid_size(b) for b in study.backends) + len(study.experiments)
    return configs * n_cycles


def check_size(study: StudyConfig, n_cycles: int, max_runs: int, *, where: str) -> int:
    """Refuse a study that expands past `max_runs` before anything is materialised."""
    total = count_runs(study, n_cycles)
    if total <= max_runs:
        return total
    parts = []
    for b in study.backends if study.has_grid else ():
        sizes = " × ".join(f"{a.key} {len(a.values)}" for a in study.axes_for(b)) or "1"
        parts.append(f"{b}: {sizes} = {study.grid_size(b):,}")
    if study.experiments:
        parts.append(f"listed experiments: {len(study.experiments)}")
    cycles = f"{n_cycles} cycle" + "s" * (n_cycles != 1)
    raise ConfigError(
        f"the study expands to {total:,} runs ({'; '.join(parts)}; × {cycles}), "
        f"more than the limit of {max_runs:,}",
        source=study.source,
        key="sweep" if study.axes else None,
        fix=f"sweep fewer values or split the study; to allow it, raise the limit with "
        f"--max-runs {total} or `execution.max_runs` in {where}",
    )


def plan_study(
    study: StudyConfig,
    execution: ExecutionConfig | None = None,
    *,
    max_runs: int | None = None,
    limit_source: str = "the user config",
    validity: ValidityPolicy | None = None,
) -> StudyPlan:
    """Expand a study into its ordered runs. `execution` overrides the study's own block;
    `validity` is the profile's policy (default: the standard profile's). With `max_runs`, a
    larger study is refused before anything is expanded."""
    execution = execution or study.execution or ExecutionConfig()
    if max_runs is not None:
        check_size(study, execution.n_cycles, max_runs, where=limit_source)
    points = expand_points(study)
    dhash = design_hash(points)
    seed = execution.seed if execution.seed is not None else int(dhash[:8], 16)
    execution = execution.model_copy(update={"seed": seed})
    order = schedule(len(points), execution.n_cycles, execution.cycle_order, seed)
    runs = tuple(PlannedRun(i + 1, c, points[p]) for i, (p, c) in enumerate(order))
    keys: dict[str, None] = {}
    for p in points:
        keys.update(dict.fromkeys(p.swept))
    policy = validity or POLICIES["standard"]
    plan = StudyPlan(study.name, dhash, execution, tuple(points), runs, tuple(keys), policy)
    if max_runs is not None and plan.most_runs > max_runs:
        n = len(plan.searches)
        raise ConfigError(
            f"the study's {n} capacity search(es) can take up to {plan.most_runs:,} runs in "
            f"all (each search counts its most probes), more than the limit of {max_runs:,}",
            source=study.source,
            key="serving.search.probes",
            fix=f"lower serving.search.probes, widen serving.search.tolerance, or raise the "
            f"limit with --max-runs {plan.most_runs} or `execution.max_runs` in {limit_source}",
        )
    return plan


class Cycled(Protocol):
    @property
    def cycle(self) -> int: ...


def gap_kind(prev: Cycled | None, run: Cycled, order: CycleOrder) -> str | None:
    """Which thermal gap precedes `run`: "cycle" where a new cycle starts (interleaved or
    shuffled), "config" between any other two runs, None before the first."""
    if prev is None:
        return None
    return "cycle" if order != "sequential" and prev.cycle != run.cycle else "config"


def gap_before(
    prev: Cycled | None,
    run: Cycled,
    order: CycleOrder,
    config_gap_s: float,
    cycle_gap_s: float,
) -> float:
    """Seconds of thermal gap before `run` (see gap_kind)."""
    kind = gap_kind(prev, run, order)
    return 0.0 if kind is None else cycle_gap_s if kind == "cycle" else config_gap_s
