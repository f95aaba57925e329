"""`llem-docker compare A B`: a study (A, the original) against its rerun (B), point by point.

Points pair up by config hash (the same experiment config in both studies). Per pair and per
figure, the per-cycle values of A's and B's completed runs (results.parquet) go through the
equivalence test of review/equivalence.py at a relative margin. Points only in A or only in
B are listed, not judged.

The figures compared by default: J/token, tokens/s, TTFT (the p50 of a serving point, the
run's mean TTFT offline: results.parquet has no offline p50), and J/request for serving
points; a figure neither study measured (energy on a CPU) is left out, J/token excepted (the
summary counts it). `metrics` names others: any numeric column of results.parquet.

A serving point's cycles may replay one arrival schedule (the default) or draw their own
(`serving.arrival_per_cycle: true` in the run's config); a note says which, since it sets
what the interval covers: machine noise only, or the arrivals' randomness too.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llem_docker.errors import ConfigError
from llem_docker.report.points import METRICS, Point, build_report
from llem_docker.report.serving import SERVING_METRICS, is_serving
from llem_docker.review.equivalence import (
    DEFAULT_MARGIN,
    Comparison,
    compare_samples,
    margin_text,
)
from llem_docker.store.layout import StudyDir
from llem_docker.store.load import load_results, study_labels

ENERGY = "energy_per_output_token_j"
NOT_METRICS = ("index", "cycle")  # numeric columns that are no figure
Samples = dict[str, dict[str, list[float]]]  # config hash → column → completed runs' values


@dataclass(frozen=True)
class Side:
    """One of the two studies: its label (the study's name, or its folder's) and folder."""

    label: str
    dir: Path


@dataclass(frozen=True)
class PointPair:
    """A point in both studies, with one comparison per figure."""

    config_hash: str
    label: str
    backend: str
    swept: dict[str, Any]
    serving: bool
    results: tuple[Comparison, ...]

    def result(self, metric: str) -> Comparison | None:
        return next((c for c in self.results if c.metric == metric), None)


@dataclass(frozen=True)
class OneSided:
    """A point in one study only."""

    config_hash: str
    label: str
    backend: str
    swept: dict[str, Any]
    completed: int


@dataclass(frozen=True)
class StudyComparison:
    a: Side
    b: Side
    margin: float
    headline: str  # the figure the summary line counts verdicts of
    pairs: list[PointPair]
    only_a: list[OneSided]
    only_b: list[OneSided]
    notes: list[str] = field(default_factory=list)
    env_lines: list[str] = field(default_factory=list)  # how the two machines differ

    def counts(self) -> Counter[str]:
        """Verdicts of the headline figure; `not measured` where a side has no value."""
        out: Counter[str] = Counter()
        for p in self.pairs:
            c = p.result(self.headline)
            out["not measured" if c is None or not (c.n_a and c.n_b) else c.verdict] += 1
        return out

    def summary(self) -> str:
        """`12 points on both sides: 9 equivalent, 1 different, 2 inconclusive at ±5%
        (J/token); 1 point only in A`."""
        order = ("equivalent", "different", "inconclusive", "not measured")
        counts = self.counts()
        if self.pairs:
            parts = ", ".join(f"{counts[v]} {v}" for v in order if counts[v])
            head = f"{_points(len(self.pairs))} on both sides: {parts} at "
            head += f"{margin_text(self.margin)} ({metric_label(self.headline)})"
        else:
            head = "no point on both sides"
        tails = [f"{_points(len(pts))} only in {side}"
                 for side, pts in (("A", self.only_a), ("B", self.only_b)) if pts]  # fmt: skip
        return "; ".join([head, *tails])


def _points(n: int) -> str:
    return f"{n} point" + ("" if n == 1 else "s")


def metric_label(metric: str) -> str:
    """The figure's short name (`J/token`), or the column's name for any other figure."""
    known = METRICS.get(metric) or SERVING_METRICS.get(metric)
    return known[0] if known else metric


def metric_unit(metric: str) -> str:
    known = METRICS.get(metric) or SERVING_METRICS.get(metric)
    return known[1] if known else ""


def parse_margin(text: str) -> float:
    """`5%` or `0.05` → 0.05; anything not strictly between 0 and 100% is refused."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # NaN fails too
        raise ConfigError(
            f"`{text}` is not a relative margin between 0 and 100%",
            source="--margin",
            fix="give a percentage such as 5% or a fraction such as 0.05",
        )
    return value


def default_metrics(serving: bool) -> list[str]:
    """J/token, tokens/s, TTFT; a serving point's TTFT is the p50, and it adds J/request."""
    if serving:
        return [ENERGY, "throughput_tokens_per_s", "ttft_ms_p50", "energy_per_request_j"]
    return [ENERGY, "throughput_tokens_per_s", "ttft_ms_mean"]


def _numeric_columns(table: Any) -> set[str]:
    import pyarrow as pa

    return {
        f.name
        for f in table.schema
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        and f.name not in NOT_METRICS
        and not f.name.startswith("swept.")
    }


def _samples(table: Any) -> Samples:
    """Every numeric figure of every completed run, by config hash."""
    columns = sorted(_numeric_columns(table))
    out: Samples = {}
    for row in table.to_pylist():
        if row.get("state") != "completed":
            continue
        figures = out.setdefault(row["config_hash"], {m: [] for m in columns})
        for m in columns:
            v = row.get(m)
            if isinstance(v, int | float) and math.isfinite(v):
                figures[m].append(float(v))
    return out


def _check_metrics(chosen: Sequence[str], known: set[str]) -> None:
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise ConfigError(
            f"{', '.join(f'`{m}`' for m in unknown)} is not a numeric column of results.parquet",
            source="--metric",
            fix=f"use one of {', '.join(sorted(known))}",
        )


def _not_measured(c: Comparison) -> Comparison:
    """The reason for a figure a side has no value of."""
    if c.n_a and c.n_b:
        return c
    where = "either study" if not (c.n_a or c.n_b) else ("A" if not c.n_a else "B")
    return replace(c, reason=f"not measured in {where}")


def _pair(
    pa_: Point, pb: Point, sa: Samples, sb: Samples, chosen: Sequence[str], margin: float
) -> PointPair:
    serving = is_serving(pa_) or is_serving(pb)
    metrics = list(chosen) or default_metrics(serving)
    fa, fb = sa.get(pa_.config_hash, {}), sb.get(pb.config_hash, {})
    results = []
    for m in metrics:
        xa, xb = fa.get(m, []), fb.get(m, [])
        if not chosen and m != ENERGY and not xa and not xb:
            continue  # a default figure neither study measured
        results.append(_not_measured(compare_samples(xa, xb, metric=m, margin=margin)))
    return PointPair(pa_.config_hash, pa_.label, pa_.backend, pa_.swept, serving, tuple(results))


def _one(p: Point) -> OneSided:
    return OneSided(p.config_hash, p.label, p.backend, p.swept, p.completed)


def arrival_per_cycle(study_dir: Path, run_ids: Sequence[str]) -> bool | None:
    """`config.serving.arrival_per_cycle` of the first run with a readable result.json (or
    the result's own `serving.arrival_per_cycle`): True when each cycle draws its own
    arrivals; False when the key is absent or false (every cycle replays one schedule); None
    when no result.json can be read."""
    for run_id in run_ids:
        try:
            data = json.loads(StudyDir(study_dir).run(run_id).result.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        config = data.get("config")
        blocks = (config.get("serving") if isinstance(config, dict) else None, data.get("serving"))
        return any(isinstance(b, dict) and b.get("arrival_per_cycle") is True for b in blocks)
    return None


SAME_ARRIVALS = (
    "every cycle replays the same arrival schedule, so the intervals cover machine noise only, "
    "not the randomness of the arrivals"
)
OWN_ARRIVALS = "each cycle draws its own arrivals, so the intervals cover arrival noise too"


def arrival_notes(pairs: Sequence[tuple[Point, Point]]) -> list[str]:
    """What the serving points' intervals cover, per study where the two differ."""
    seen: dict[str, set[bool | None]] = {"A": set(), "B": set()}
    for pa_, pb in pairs:
        if is_serving(pa_) or is_serving(pb):
            seen["A"].add(arrival_per_cycle(pa_.study_dir, pa_.run_ids))
            seen["B"].add(arrival_per_cycle(pb.study_dir, pb.run_ids))
    text = {False: SAME_ARRIVALS, True: OWN_ARRIVALS}

    def said(values: set[bool | None]) -> str:
        known = {v for v in values if v is not None}
        if len(known) == 1:
            return text[known.pop()]
        return "some points replay one arrival schedule, others draw their own per cycle"

    if not seen["A"] and not seen["B"]:
        return []
    if seen["A"] == seen["B"]:
        return [f"serving points: {said(seen['A'])}"]
    return [f"serving points in {side}: {said(seen[side])}" for side in ("A", "B")]


def pairing_key(study_dir: Path, p: Point, ignore: Sequence[str]) -> str:
    """The point's config hash, or without `ignore`d keys its config (from its first run's
    experiment.json) less those keys, as canonical JSON."""
    if not ignore:
        return p.config_hash
    for run_id in p.run_ids:
        try:
            raw = json.loads(StudyDir(study_dir).run(run_id).experiment.read_text("utf-8"))
            config = dict(raw["config"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for key in ignore:
            *path, last = key.split(".")
            node: Any = config
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
        return json.dumps(config, sort_keys=True, separators=(",", ":"))
    return p.config_hash


def compare_studies(
    a: Path,
    b: Path,
    *,
    margin: float = DEFAULT_MARGIN,
    metrics: Sequence[str] | None = None,
    env_lines: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> StudyComparison:
    """Study B (a rerun) against study A (the original), point by point, at the relative
    `margin`; `metrics` are results.parquet columns (default: `default_metrics`). Points pair
    by config hash, or with `ignore` (config keys, dotted) by their configs less those keys:
    a deliberate change (another batch size) then pairs with the point it changed."""
    chosen = list(dict.fromkeys(metrics or []))
    table_a, table_b = load_results(a), load_results(b)
    _check_metrics(chosen, _numeric_columns(table_a) | _numeric_columns(table_b))
    ra, rb = build_report(a), build_report(b)
    sa, sb = _samples(table_a), _samples(table_b)
    ka = {p.config_hash: pairing_key(a, p, ignore) for p in ra.points}
    kb = {p.config_hash: pairing_key(b, p, ignore) for p in rb.points}
    in_b = {kb[p.config_hash]: p for p in rb.points}
    in_a = {ka[p.config_hash] for p in ra.points}
    both = [(p, in_b[ka[p.config_hash]]) for p in ra.points if ka[p.config_hash] in in_b]
    label_a, label_b = study_labels([a, b])
    return StudyComparison(
        a=Side(label_a, a),
        b=Side(label_b, b),
        margin=margin,
        headline=chosen[0] if chosen else ENERGY,
        pairs=[_pair(pa_, pb, sa, sb, chosen, margin) for pa_, pb in both],
        only_a=[_one(p) for p in ra.points if ka[p.config_hash] not in in_b],
        only_b=[_one(p) for p in rb.points if kb[p.config_hash] not in in_a],
        notes=arrival_notes(both),
        env_lines=list(env_lines),
    )
