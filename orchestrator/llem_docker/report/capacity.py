"""The report's capacity table: one row per searched configuration, over its cycles' searches
(study.json's `searches`): the capacity's mean and 95% interval, the range of the cycles'
brackets, the energy per request and per output token at the capacity, and how each search
ended (docs/capacity.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from llem_docker.report.fmt import num
from llem_docker.report.points import Report
from llem_docker.report.stats import summarize
from llem_docker.report.table import Column, cell

TITLE = "Capacity (the highest request rate that meets the SLO; one search per cycle)"


def _rule(search: dict[str, Any]) -> str:
    slo, rule = search.get("slo") or {}, search.get("rule") or {}
    names = {"ttft_ms": "TTFT", "tpot_ms": "TPOT"}
    parts = [f"{names[k]} ≤ {num(v)} ms" for k, v in slo.items() if v is not None and k in names]
    share = rule.get("attainment")
    each = "each" if rule.get("per") == "objective" else "together"
    return ", ".join(parts) + (f" for {share:.0%} of requests ({each})" if share else "")


def _label(search: dict[str, Any]) -> str:
    swept = search.get("swept") or {}
    return ", ".join(f"{k}={v}" for k, v in swept.items()) or str(search.get("backend", ""))


def capacity_parts(r: Report, *, full: bool = True) -> tuple[list[Column], list[str]]:
    """The table's columns and the lines under it; no columns when no study searched."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for study in r.studies:
        for s in study.data.get("searches") or []:
            groups.setdefault((study.label, str(s.get("config_hash"))), []).append(s)
    if not groups:
        return [], []
    found = [[s for s in g if s.get("capacity_rps") is not None] for g in groups.values()]
    cols = [Column("study", [k[0] for k in groups], identity=True)] if r.comparing else []
    cols += [
        Column("point", [_label(g[0]) for g in groups.values()], identity=True),
        Column("SLO", [_rule(g[0]) for g in groups.values()]),
        Column(
            "capacity (req/s)",
            [cell(summarize([s["capacity_rps"] for s in f]), full=full) for f in found],
            numeric=True,
        ),
        Column("brackets (req/s)", [_brackets(g) for g in groups.values()], numeric=True),
        Column("J/request at it", [_at(f, "energy_per_request_j", full) for f in found]),
        Column("J/token at it", [_at(f, "energy_per_output_token_j", full) for f in found]),
        Column("searches", [_ends(g) for g in groups.values()]),
    ]
    lines = [
        "capacity: the mean over the cycles' searches with its 95% interval; brackets: the "
        "highest rate that met the SLO and the lowest that missed it, cycle by cycle"
    ]
    for g in groups.values():
        reasons = {s.get("unavailable_reason") for s in g} - {None}
        if reasons:
            lines.append(f"{_label(g[0])}: {'; '.join(sorted(str(x) for x in reasons))}")
    return cols, lines


def _brackets(group: list[dict[str, Any]]) -> str:
    def one(s: dict[str, Any]) -> str:
        low, high = s.get("passed_rps"), s.get("failed_rps")
        if low is None and high is None:
            return "–"
        return f"{num(low) if low is not None else '<'}–{num(high) if high is not None else '≥'}"

    return ", ".join(one(s) for s in group)


def _at(found: list[dict[str, Any]], key: str, full: bool) -> str:
    return cell(summarize([s.get(key) for s in found]), full=full)


def _ends(group: list[dict[str, Any]]) -> str:
    counts = Counter(str(s.get("status") or s.get("state")) for s in group)
    probes = sum(len(s.get("probes") or []) for s in group)
    ends = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
    return f"{ends}; {probes} probes"
