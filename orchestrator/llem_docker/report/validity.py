"""`llem-docker report … --validity`: the rules × points table of a study (docs/validity.md).

For every rule, and every point, how many of the point's completed runs passed, failed or
could not be judged, read from each run's result.json (its `validity` block, as the harness
judged it under the study's profile); then the point-level rules (every run completed, the
profile's minimum cycles, the CV across cycles); and for each rule that failed somewhere,
what to change. Points are numbered P1, P2, … in the table, with a legend, so that the table
stays narrow however long the points' names are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from llem_docker.report.points import Point, Report
from llem_docker.report.quality import GATE_RULE
from llem_docker.store.layout import StudyDir
from llem_harness.host_api import TIMESERIES_FILE, ExperimentResult, evaluate, read_timeseries

# What to change when a rule fails (docs/validity.md has each rule's threshold and source).
FIXES: dict[str, str] = {
    "window_length": "a longer window: more prompts or longer outputs, or --profile "
    "publication (whose window holds whole passes until it is long enough)",
    "sampling_coverage": "a less loaded host, or a longer measurement.sample_interval_ms",
    "sampling_gap": "a less loaded host: the power sampler stalled",
    "counter_vs_integral": "a longer window (the counter and the samples agree better over "
    "more of them)",
    "average_power": "check the load and the GPU's power limit (nvidia-smi -q -d POWER)",
    "peak_power": "check the GPU's power limit and its power readings",
    "temperature": "a cooler GPU: longer thermal gaps (execution.config_gap_seconds, "
    "cycle_gap_seconds) or better cooling",
    "throttling": "a cooler GPU or less power: longer thermal gaps, or a lower batch",
    "warmup_settled": "more warmup passes (warmup_max_runs), or a looser warmup_cv_threshold",
    "requests_completed": "a lower request rate, or see server.log for why requests failed",
    "energy_per_token": "check the energy backend (llem-docker doctor)",
    "cut_responses": "a higher max_output_tokens",
    "idle_baseline": "an idle GPU before each run: longer gaps, no other job on the GPU",
    "baseline_context": "no other process on the GPU while the run starts (nvidia-smi)",
    "batch_reached": "more prompts per run (the ramp and drain weigh less), or a lower "
    "max_num_seqs / batch_size that the engine can fill",
    "every run completed": "finish the failed runs: llem-docker run … --resume FOLDER",
    "min_cycles": "more cycles: --cycles, or the profile's default",
    "cycle_cv": "more cycles, longer windows and thermal gaps between runs",
    "quality_gate": "a milder quantization, or more questions (quality's n) if the gap is "
    "within the accuracy's interval",
}
POINT_RULES = ("every run completed", "min_cycles", "cycle_cv")


@dataclass
class RuleRow:
    rule: str
    cells: list[Counter[str]] = field(default_factory=list)  # per point: status -> runs
    point_level: bool = False  # judged once per point, not per run

    def shown(self, i: int) -> str:
        c = self.cells[i]
        return ("✗" if c["fail"] else "✓") if self.point_level else cell(c)

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.cells:
            out.update(c)
        return out


def rule_rows(report: Report) -> list[RuleRow]:
    """One row per rule, in the order the runs list them, then the point-level rules."""
    rows: dict[str, RuleRow] = {}
    n = len(report.points)
    for i, p in enumerate(report.points):
        for verdicts in _run_rules(p):
            for rule, status in verdicts:
                row = rows.setdefault(rule, RuleRow(rule, [Counter() for _ in range(n)]))
                row.cells[i][status] += 1
    gated = any(p.relative_accuracy is not None for p in report.points)
    for rule in (*POINT_RULES, *((GATE_RULE,) if gated else ())):
        row = rows.setdefault(rule, RuleRow(rule, [Counter() for _ in range(n)], True))
        for i, p in enumerate(report.points):
            row.cells[i]["fail" if rule in p.invalid_rules else "pass"] += 1
    return list(rows.values())


def _run_rules(p: Point) -> list[list[tuple[str, str]]]:
    """Each completed run's (rule, status) pairs: its result.json's verdicts, or, for a result
    from before the rules (schema < 1.9), the rules applied now, as `validate` does."""
    out: list[list[tuple[str, str]]] = []
    for run_id in p.run_ids:
        folder = StudyDir(p.study_dir).run(run_id)
        try:
            res = ExperimentResult.model_validate_json(folder.result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        verdict = res.validity
        if verdict is None:
            ts = folder.file(TIMESERIES_FILE)
            verdict = evaluate(res, read_timeseries(ts) if ts.is_file() else [])
        out.append([(r.rule, r.status) for r in verdict.rules])
    return out


def cell(c: Counter[str]) -> str:
    """`3 ✓`, `1 ✗ 2 ✓`, `2 ?`: the point's runs by status; `-` when none was judged."""
    parts = [f"{c[s]} {mark}" for s, mark in (("fail", "✗"), ("unknown", "?"), ("pass", "✓"))
             if c[s]]  # fmt: skip
    return " ".join(parts) or "-"


def print_validity(console: Console, report: Report) -> None:
    rows = rule_rows(report)
    console.print(
        "validity: rules × points (runs that passed ✓, failed ✗, unknown ?; the last rules are "
        "the point's own)",
        style="italic",
        highlight=False,
    )
    table = Table()
    table.add_column("rule")
    for i in range(len(report.points)):
        table.add_column(f"P{i + 1}", justify="right", no_wrap=True)
    for row in rows:
        failed = row.totals()["fail"] > 0
        name = f"[red]{escape(row.rule)}[/red]" if failed else escape(row.rule)
        table.add_row(name, *(row.shown(i) for i in range(len(row.cells))))
    console.print(table)
    for i, p in enumerate(report.points):
        console.print(f"P{i + 1}: {escape(p.label or p.config_hash)} — {escape(p.verdict)}")
    fixes = [(r.rule, FIXES.get(r.rule, "see docs/validity.md")) for r in rows
             if r.totals()["fail"]]  # fmt: skip
    if fixes:
        console.print("[bold]to fix[/bold]")
    for rule, fix in fixes:  # wrapped lines keep the indent
        console.print(Padding(Text(f"{rule}: {fix}"), (0, 0, 0, 2)))
    unknown = [r.rule for r in rows if r.totals()["unknown"]]
    if unknown:
        console.print(
            f"unknown: {escape(', '.join(unknown))} could not be judged (no GPU power, or a "
            "result from before the rule); result.json's validity block says why"
        )


def validity_json(report: Report) -> list[dict[str, Any]]:
    return [
        {
            "rule": r.rule,
            "fix": FIXES.get(r.rule) if r.totals()["fail"] else None,
            "points": [
                {"point": p.label, "config_hash": p.config_hash, **dict(c)}
                for p, c in zip(report.points, r.cells, strict=True)
            ],
        }
        for r in rule_rows(report)
    ]


def validity_markdown(report: Report) -> str:
    rows = rule_rows(report)
    head = "| rule | " + " | ".join(f"P{i + 1}" for i in range(len(report.points))) + " |"
    lines = ["# Validity", "", head, "|---" * (len(report.points) + 1) + "|"]
    lines += [
        f"| `{r.rule}` | " + " | ".join(r.shown(i) for i in range(len(r.cells))) + " |"
        for r in rows
    ]
    lines += ["", *(f"- P{i + 1}: {p.label} — {p.verdict}" for i, p in enumerate(report.points))]
    fixes = [f"- `{r.rule}`: {FIXES.get(r.rule, 'see docs/validity.md')}" for r in rows
             if r.totals()["fail"]]  # fmt: skip
    return "\n".join(lines + (["", "## To fix", "", *fixes] if fixes else [])) + "\n"
