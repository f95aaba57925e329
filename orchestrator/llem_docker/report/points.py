"""One row per study point (a distinct experiment config) with its statistics across cycles.

Read from results.parquet (its public schema) and study.json. Only completed runs enter the
statistics; failed runs are counted and flagged. A figure no run measured (energy on a CPU)
stays null, with the reason the runs gave.

Each run's result.json adds what the parquet file leaves out: the names of its warnings
and why a figure is missing (report/notes.py).

Several studies compare side by side: each keeps its own points (the same config in two
studies is two points), labelled with the study's name (`results.study_labels`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llem_docker.errors import ConfigError
from llem_docker.report import quality
from llem_docker.report.notes import UNNAMED, read_run, warning_flag
from llem_docker.report.serving import FACTS, LINEAR_METRICS, SERVING_METRICS
from llem_docker.report.stats import Summary, summarize
from llem_docker.store.layout import StudyDir
from llem_docker.store.load import load_results, study_labels
from llem_harness.host_api import POLICIES, ValidityPolicy

# column in results.parquet → (short label, unit)
METRICS: dict[str, tuple[str, str]] = {
    "energy_per_output_token_j": ("J/token", "J"),
    "energy_per_output_token_all_j": ("J/token GPU+CPU+DRAM", "J"),
    "energy_per_response_j": ("J/response", "J"),
    "response_tokens_mean": ("tokens/response", "tokens"),
    "prefill_energy_per_token_j": ("J/prefill token", "J"),
    "decode_energy_per_token_j": ("J/decode token", "J"),
    "throughput_tokens_per_s": ("tokens/s", "tok/s"),
    "mfu": ("MFU", "fraction"),
    "ttft_ms_mean": ("TTFT", "ms"),
    "energy_total_j": ("energy", "J"),
    "co2_kg": ("CO2", "kg"),
    "accuracy": ("accuracy", "fraction"),
    "energy_per_correct_answer_j": ("J/correct answer", "J"),
}
CV_CHECKED = ("energy_per_output_token_j", "throughput_tokens_per_s")
QUALITY_METRICS = ("accuracy", "energy_per_correct_answer_j")  # with a `quality:` section
DEFAULT_CV = 0.05
FRACTIONS = ("accuracy", "slo_attainment")  # their intervals are clipped to [0, 1]


@dataclass
class Point:
    config_hash: str
    backend: str
    model: str
    swept: dict[str, Any]
    runs: int = 0
    completed: int = 0
    failed: int = 0
    with_warnings: int = 0
    stats: dict[str, Summary] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    energy_reason: str | None = None
    run_ids: list[str] = field(default_factory=list)
    study: str = ""  # the study's label
    study_dir: Path = Path()
    facts: dict[str, Any] = field(default_factory=dict)  # scenario, request rate, SLOs
    run_valid: list[bool | None] = field(default_factory=list)  # each completed run's verdict
    invalid_rules: list[str] = field(default_factory=list)  # why the point is not valid
    warnings: Counter[str] = field(default_factory=Counter)  # warning → runs that gave it
    reasons: dict[str, str] = field(default_factory=dict)  # metric → why it is missing
    # accuracy over its quantization reference point's (report/quality.py's gate)
    relative_accuracy: float | None = None

    @property
    def valid(self) -> bool | None:
        """Valid when every run completed and passed every rule, and the CV across cycles is
        under the threshold; null when no rule failed but some run could not be judged in
        full (no GPU figures) or predates the rules (docs/validity.md)."""
        if self.invalid_rules:
            return False
        return None if None in self.run_valid or not self.run_valid else True

    @property
    def verdict(self) -> str:
        v = self.valid
        if v is None:
            return "unknown"
        return "valid" if v else "invalid: " + ", ".join(self.invalid_rules)

    @property
    def label(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.swept.items())
        return f"{self.backend} {values}".strip()

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "config_hash": self.config_hash,
            "backend": self.backend,
            "model": self.model,
            "swept": self.swept,
            "runs": self.runs,
            "completed": self.completed,
            "failed": self.failed,
            "runs_with_warnings": self.with_warnings,
            "warnings": dict(self.warnings),
            "stats": {k: _stat_dict(s) for k, s in self.stats.items()},
            "flags": self.flags,
            "valid": self.valid,
            "invalid_rules": self.invalid_rules,
            "energy_unavailable_reason": self.energy_reason,
            "run_ids": self.run_ids,
        }


def _stat_dict(s: Summary) -> dict[str, Any]:
    return {
        "n": s.n, "mean": s.mean, "std": s.std, "ci95": s.ci95, "cv": s.cv,
        "ci_lo": s.low, "ci_hi": s.high, "ci_method": s.method,
    }  # fmt: skip


@dataclass
class Study:
    label: str
    dir: Path
    data: dict[str, Any]  # study.json; empty where it cannot be read


@dataclass
class Report:
    studies: list[Study]
    points: list[Point]
    swept_keys: list[str]
    cv_threshold: float

    @property
    def comparing(self) -> bool:
        """Several studies: every output gets a `study` column."""
        return len(self.studies) > 1

    @property
    def study_dir(self) -> Path:
        return self.studies[0].dir

    @property
    def study(self) -> dict[str, Any]:
        return self.studies[0].data

    def find_run(self, run_id: str) -> Path | None:
        """The run's folder in the first study (in the order given) that holds it."""
        for s in self.studies:
            run = StudyDir(s.dir).run(run_id)
            if run.result.is_file():
                return run.path
        return None


def build_reports(study_dirs: list[Path], *, cv_threshold: float | None = None) -> Report:
    """One report over several studies, their points one study after the other."""
    seen: dict[Path, Path] = {}
    for d in study_dirs:
        if d.resolve() in seen:
            raise ConfigError(
                f"{d} is given twice (as {seen[d.resolve()]} and {d})",
                source="RESULTS_DIR",
                fix="give each study folder once",
            )
        seen[d.resolve()] = d
    parts = [build_report(d, cv_threshold=cv_threshold) for d in study_dirs]
    for label, part in zip(study_labels(study_dirs), parts, strict=True):
        part.studies[0].label = label
        for p in part.points:
            p.study = label
    keys = sorted({k for part in parts for k in part.swept_keys})
    studies = [part.studies[0] for part in parts]
    shown = cv_threshold if cv_threshold is not None else parts[0].cv_threshold
    return Report(studies, [p for part in parts for p in part.points], keys, shown)


def note_rule(p: Point, rule: str) -> None:
    if rule not in p.invalid_rules:
        p.invalid_rules.append(rule)


def _add_run(p: Point, r: dict[str, Any], values: dict[str, list[float | None]]) -> None:
    """A row of results.parquet into its point: counts, verdict, warnings, figures."""
    p.runs += 1
    p.run_ids.append(r["run_id"])
    if r["state"] != "completed":
        p.failed += r["state"] == "failed"
        note_rule(p, "every run completed")
        return
    p.completed += 1
    p.run_valid.append(r.get("valid"))
    for rule in (r.get("invalid_rules") or "").split(", "):
        if rule:
            note_rule(p, rule)
    notes = read_run(StudyDir(p.study_dir).run(r["run_id"]).result)
    if (r.get("warnings") or 0) > 0:
        p.with_warnings += 1
        p.warnings.update((notes.warnings if notes else None) or [UNNAMED])
    for metric, why in (notes.reasons if notes else {}).items():
        p.reasons.setdefault(metric, why)
    p.energy_reason = p.energy_reason or r.get("energy_unavailable_reason")
    for m in values:
        values[m].append(r.get(m))
    p.facts = p.facts or {k: r.get(k) for k in FACTS}


def study_policy(study_dir: Path) -> ValidityPolicy:
    """The thresholds the study's profile set (its manifest); for a study from before they
    were recorded (manifest 1.3), the standard profile's without a cycle minimum, which its
    profile is not known to have asked for."""
    try:
        manifest = json.loads(StudyDir(study_dir).manifest.read_text(encoding="utf-8"))
        return ValidityPolicy.model_validate(manifest["validity"])
    except (OSError, ValueError, KeyError, TypeError):
        return POLICIES["standard"].model_copy(update={"min_cycles": 1})


def _finish(
    p: Point,
    values: dict[str, list[float | None]],
    cv_threshold: float,
    policy: ValidityPolicy | None = None,
) -> None:
    """The point's statistics and flags, once every run is in (with `policy`, its minimum
    cycles too)."""
    if policy is not None and p.completed < policy.min_cycles:
        p.flags.append(f"{p.completed} cycle(s) < {policy.min_cycles} ({policy.profile} profile)")
        note_rule(p, "min_cycles")
    p.stats = {m: summarize(v, log=m not in LINEAR_METRICS) for m, v in values.items()}
    for m in FRACTIONS:  # a linear interval of a fraction stops at 0 and 1
        if (s := p.stats.get(m)) is not None and s.low is not None and s.high is not None:
            p.stats[m] = replace(s, low=max(0.0, s.low), high=min(1.0, s.high))
    if p.facts.get("scenario") != "serving":  # offline points carry no serving figures
        p.stats = {m: s for m, s in p.stats.items() if m not in SERVING_METRICS}
    for m in CV_CHECKED:
        s = p.stats[m]
        if s.cv is not None and s.cv > cv_threshold:
            p.flags.append(f"CV of {METRICS[m][0]} {s.cv:.1%} > {cv_threshold:.0%}")
            note_rule(p, "cycle_cv")
    if flag := warning_flag(p.warnings):
        p.flags.append(flag)
    if p.failed:
        p.flags.append(f"{p.failed}/{p.runs} runs failed")
    if p.stats["energy_per_output_token_j"].n:
        p.energy_reason = None


def build_report(study_dir: Path, *, cv_threshold: float | None = None) -> Report:
    """The study's points. Each is judged by its study's profile (`study_policy`): its
    minimum cycles, and its CV bound unless `cv_threshold` is given."""
    rows = load_results(study_dir).to_pylist()
    policy = study_policy(study_dir)
    cv = cv_threshold if cv_threshold is not None else policy.max_cycle_cv
    try:
        study = json.loads(StudyDir(study_dir).study_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        study = {}
    if not isinstance(study, dict):
        study = {}
    label = study_labels([study_dir])[0]
    swept_keys = sorted({k[len("swept.") :] for r in rows for k in r if k.startswith("swept.")})
    points: dict[str, Point] = {}
    values: dict[str, dict[str, list[float | None]]] = {}
    for r in sorted(rows, key=lambda r: r["index"]):
        p = points.get(r["config_hash"])
        if p is None:
            swept = {k: r.get(f"swept.{k}") for k in swept_keys}
            p = points[r["config_hash"]] = Point(
                r["config_hash"], r["backend"], r.get("model") or "",
                {k: v for k, v in swept.items() if v is not None},
                study=label, study_dir=study_dir,
            )  # fmt: skip
            values[p.config_hash] = {m: [] for m in (*METRICS, *SERVING_METRICS)}
        _add_run(p, r, values[p.config_hash])
    for p in points.values():
        _finish(p, values[p.config_hash], cv, policy)
    quality.apply_gate(list(points.values()), note_rule)
    return Report([Study(label, study_dir, study)], list(points.values()), swept_keys, cv)
