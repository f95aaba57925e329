"""`llem-docker report --best`: the point that meets every constraint at the best mean of one
figure, and the runners-up the data cannot tell from it (docs/results.md, "Pareto front and
picking a configuration under constraints").

- Constraints: `--best "ttft_ms_p99<=500,tpot_ms_p99<=50"`, a comma-separated list of
  `<column><op><number>`, ops `<=`, `<`, `>=`, `>`, columns the results.parquet figures of the
  report (report/points.py `METRICS`, report/serving.py `SERVING_METRICS`). A point is
  feasible when the MEAN across cycles of every constrained figure meets its bound; a figure
  the point lacks violates its constraint.
- Objective: `--by COLUMN` (lowest mean wins), `--by max:COLUMN` (highest wins); by default
  J/request where the report has serving points, else J/token.
- Runners-up: every other feasible point whose per-cycle values of the objective are not
  significantly worse than the winner's: Welch's two-sided test (review/equivalence.py
  `compare_samples`) does not reject equality, `p_difference >= 0.05`. Fewer than 2 cycles
  on a side allow no test, and the point is listed as a runner-up marked untested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llem_docker.errors import ConfigError
from llem_docker.report.fmt import bounds, num
from llem_docker.report.points import METRICS, Point
from llem_docker.report.serving import SERVING_METRICS, is_serving
from llem_docker.review.equivalence import Comparison, compare_samples, pct

KNOWN: dict[str, tuple[str, str]] = {**METRICS, **SERVING_METRICS}
OPS = ("<=", ">=", "<", ">")  # the two-character ones first
ALPHA = 0.05
MARGIN = 0.05  # the equivalence margin the comparison is made at (reported, not the rule)
# (study folder, config hash) → column → the completed runs' values
Samples = Mapping[tuple[Path, str], Mapping[str, Sequence[float]]]


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        return {
            "<=": value <= self.bound, "<": value < self.bound,
            ">=": value >= self.bound, ">": value > self.bound,
        }[self.op]  # fmt: skip

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{num(self.bound)}"


def _bad(what: str, source: str) -> ConfigError:
    known = ", ".join(sorted(KNOWN))
    return ConfigError(what, source=source, fix=f"`<column><op><number>`, ops <=, <, >=, >; "
                       f"columns: {known}")  # fmt: skip


def parse_best(text: str) -> list[Constraint]:
    """`--best`'s constraints; ConfigError naming `--best` for an unknown column, op or
    number."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*(.*)", part)
        if m is None or m.group(1) not in KNOWN:
            name = m.group(1) if m else part
            raise _bad(f"`{name}` in `{part}` is not a figure of the report", "--best")
        metric, rest = m.group(1), m.group(2)
        op = next((o for o in OPS if rest.startswith(o)), None)
        if op is None:
            raise _bad(f"`{part}` has no operator <=, <, >= or >", "--best")
        try:
            bound = float(rest[len(op) :])
        except ValueError:
            bound = float("nan")
        if bound != bound:  # NaN: not a number
            raise _bad(f"`{rest[len(op) :].strip()}` in `{part}` is not a number", "--best")
        out.append(Constraint(metric, op, bound))
    return out


def parse_by(text: str | None, points: Sequence[Point]) -> tuple[str, bool]:
    """(the column, maximise?) of `--by`; the default is J/request with serving points, else
    J/token."""
    if text is None:
        serving = any(is_serving(p) for p in points)
        return ("energy_per_request_j" if serving else "energy_per_output_token_j"), False
    maximise = text.startswith("max:")
    metric = text.removeprefix("max:").removeprefix("min:").strip()
    if metric not in KNOWN:
        raise ConfigError(
            f"`{metric}` is not a figure of the report",
            source="--by",
            fix=f"use one of {', '.join(sorted(KNOWN))}, or max:<column> to maximise",
        )
    return metric, maximise


def mean(p: Point, metric: str) -> float | None:
    s = p.stats.get(metric)
    return None if s is None or s.mean is None else float(s.mean)


def violations(p: Point, constraints: Sequence[Constraint]) -> list[str]:
    """The constraints the point's means break (a figure it lacks breaks its constraint)."""
    out = []
    for c in constraints:
        v = mean(p, c.metric)
        if v is None:
            out.append(f"{c.text} (not measured)")
        elif not c.holds(v):
            out.append(f"{c.text} (mean {num(v)})")
    return out


@dataclass
class Pick:
    by: str
    maximise: bool
    constraints: list[Constraint]
    winner: Point | None = None
    runners_up: list[tuple[Point, Comparison]] = field(default_factory=list)
    worse: list[tuple[Point, Comparison]] = field(default_factory=list)  # significantly
    infeasible: list[tuple[Point, list[str]]] = field(default_factory=list)


def pick(
    points: Sequence[Point],
    constraints: Sequence[Constraint],
    by: str,
    samples: Samples,
    *,
    maximise: bool = False,
) -> Pick:
    """The feasible point with the best mean of `by`, and the rest compared with it on their
    per-cycle values (`samples`, keyed by (study folder, config hash))."""
    out = Pick(by, maximise, list(constraints))
    feasible = []
    for p in points:
        broken = violations(p, constraints)
        if mean(p, by) is None:
            broken.append(f"{by} not measured")
        if broken:
            out.infeasible.append((p, broken))
        else:
            feasible.append(p)
    if not feasible:
        return out
    ranked = sorted(feasible, key=lambda p: (mean(p, by) or 0.0) * (-1 if maximise else 1))
    out.winner = ranked[0]

    def values(p: Point) -> Sequence[float]:
        return samples.get((p.study_dir, p.config_hash), {}).get(by, [])

    for p in ranked[1:]:
        c = compare_samples(values(out.winner), values(p), metric=by, margin=MARGIN)
        same = c.p_difference is None or c.p_difference >= ALPHA
        (out.runners_up if same else out.worse).append((p, c))
    return out


def load_samples(points: Sequence[Point]) -> dict[tuple[Path, str], dict[str, list[float]]]:
    """Every completed run's figures from each study's results.parquet (review/compare.py's
    reading), keyed by (study folder, config hash)."""
    from llem_docker.review.compare import _samples
    from llem_docker.store.load import load_results

    out: dict[tuple[Path, str], dict[str, list[float]]] = {}
    for d in dict.fromkeys(p.study_dir for p in points):
        out |= {(d, h): figures for h, figures in _samples(load_results(d)).items()}
    return out


def _name(p: Point, comparing: bool) -> str:
    return f"{p.study}: {p.label}" if comparing else p.label


def _figure(p: Point, by: str) -> str:
    s = p.stats[by]
    return f"{bounds(s.mean, s.low, s.high)} (n={s.n})" if s.low is not None else num(s.mean)


def lines(result: Pick, *, comparing: bool = False) -> list[str]:
    """The pick in words: the winner, the runners-up, the others; or why none is feasible."""
    label, unit = KNOWN[result.by]
    goal = f"{'highest' if result.maximise else 'lowest'} mean {label} ({unit})"
    wanted = ", ".join(c.text for c in result.constraints) or "no constraint"
    out = [f"Best under {wanted}, by {goal}; mean [95% interval] across cycles:"]
    if result.winner is None:
        out.append("no point meets the constraints:")
        return out + [f"  {_name(p, comparing)}: {'; '.join(v)}" for p, v in result.infeasible]
    out.append(f"winner: {_name(result.winner, comparing)}: {_figure(result.winner, result.by)}")
    for title, group in (("not significantly worse (Welch p ≥ 0.05)", result.runners_up),
                         ("significantly worse (Welch p < 0.05)", result.worse)):  # fmt: skip
        if group:
            out.append(f"{title}:")
        for p, c in group:
            diff = "untested, fewer than 2 cycles" if c.p_difference is None else (
                f"{pct(c.rel_diff)} vs the winner, p {num(c.p_difference, 2)}")  # fmt: skip
            out.append(f"  {_name(p, comparing)}: {_figure(p, result.by)}; {diff}")
    if result.infeasible:
        out.append(f"{len(result.infeasible)} point(s) break a constraint:")
        out += [f"  {_name(p, comparing)}: {'; '.join(v)}" for p, v in result.infeasible]
    return out


def markdown(result: Pick, *, comparing: bool = False) -> str:
    """The pick as a section for the end of report.md."""
    head, *rest = lines(result, comparing=comparing)
    found = [f"  - {x.strip()}" if x.startswith("  ") else f"- {x}" for x in rest]
    return "\n## Best under constraints\n\n" + "\n".join([head, "", *found]) + "\n"


def as_dict(result: Pick) -> dict[str, Any]:
    """The pick for `--format json`'s `best` key."""

    def one(p: Point, c: Comparison | None = None) -> dict[str, Any]:
        s = p.stats[result.by]
        d = {"study": p.study, "point": p.label, "config_hash": p.config_hash,
             "mean": s.mean, "ci_lo": s.low, "ci_hi": s.high, "n": s.n}  # fmt: skip
        if c is not None:
            d |= {"rel_diff": c.rel_diff, "p_difference": c.p_difference, "verdict": c.verdict}
        return d

    return {
        "by": result.by,
        "maximise": result.maximise,
        "constraints": [c.text for c in result.constraints],
        "winner": None if result.winner is None else one(result.winner),
        "runners_up": [one(p, c) for p, c in result.runners_up],
        "significantly_worse": [one(p, c) for p, c in result.worse],
        "infeasible": [
            {"study": p.study, "point": p.label, "config_hash": p.config_hash, "violated": v}
            for p, v in result.infeasible
        ],
    }
