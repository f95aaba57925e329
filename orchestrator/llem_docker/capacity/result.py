"""A capacity search's record in study.json: the capacity with its bracket, the energy at it,
and every probe's figures; rebuilt from the manifest and the probes' results, so `collect`
and the inline loop write the same (docs/capacity.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llem_docker.capacity.judge import judge
from llem_docker.capacity.search import STATUS_TEXT, Probe, SearchStatus, verdict
from llem_docker.store.manifest import Manifest, RunError, RunState, SearchEntry
from llem_harness.host_api import SLO, CapacitySearch, ExperimentResult


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProbeRecord(_Model):
    run_id: str
    probe: int
    request_rate: float
    state: RunState
    passed: bool | None  # None: no result, or one the rule cannot read
    attainment: dict[str, float] = Field(default_factory=dict)  # what the rule read
    achieved_rate: float | None = None
    completed: int | None = None
    failed: int | None = None
    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    energy_per_request_j: float | None = None
    energy_per_output_token_j: float | None = None
    energy_unavailable_reason: str | None = None


class SearchResult(_Model):
    search_id: str
    index: int
    cycle: int
    backend: str
    config_hash: str  # the search point's (its probes have their own)
    swept: dict[str, Any] = Field(default_factory=dict)
    rule: CapacitySearch
    slo: SLO
    state: RunState
    status: SearchStatus | None = None  # None while (or because) it did not finish
    status_text: str | None = None
    capacity_rps: float | None = None  # the highest rate that met the SLO
    passed_rps: float | None = None  # the bracket: that rate ...
    failed_rps: float | None = None  # ... and the lowest that missed it (None: none did)
    energy_per_request_j: float | None = None  # the probe at the capacity's
    energy_per_output_token_j: float | None = None
    unavailable_reason: str | None = None  # why the capacity or its energy is null
    error: RunError | None = None
    probes: list[ProbeRecord] = Field(default_factory=list)


def build_searches(
    manifest: Manifest, results: Mapping[str, ExperimentResult]
) -> list[SearchResult]:
    return [_one(manifest, s, results) for s in manifest.searches]


def _one(
    manifest: Manifest, entry: SearchEntry, results: Mapping[str, ExperimentResult]
) -> SearchResult:
    records: list[ProbeRecord] = []
    for e in manifest.probes(entry.search_id):
        res = results.get(e.run_id) if e.state == "completed" else None
        records.append(_probe(entry, e.run_id, e.probe or 0, e.request_rate or 0.0, e.state, res))
    out = SearchResult(
        search_id=entry.search_id,
        index=entry.index,
        cycle=entry.cycle,
        backend=entry.backend,
        config_hash=entry.config_hash,
        swept=entry.swept,
        rule=entry.rule,
        slo=entry.slo,
        state=entry.state,
        error=entry.error,
        probes=records,
    )
    judged = [Probe(r.request_rate, r.passed) for r in records if r.passed is not None]
    found = verdict(entry.rule, judged) if len(judged) == len(records) else None
    if entry.state != "completed" or found is None:
        out.unavailable_reason = f"the search is {entry.state}" + (
            f": {entry.error.message}" if entry.error else ""
        )
        return out
    out.status, out.status_text = found.status, STATUS_TEXT[found.status]
    out.capacity_rps, out.passed_rps, out.failed_rps = found.capacity, found.passed, found.failed
    at = next((r for r in records if r.request_rate == found.capacity), None)
    if at is None:
        out.unavailable_reason = STATUS_TEXT[found.status]
        return out
    out.energy_per_request_j = at.energy_per_request_j
    out.energy_per_output_token_j = at.energy_per_output_token_j
    out.unavailable_reason = at.energy_unavailable_reason
    return out


def _probe(
    entry: SearchEntry,
    run_id: str,
    number: int,
    rate: float,
    state: RunState,
    res: ExperimentResult | None,
) -> ProbeRecord:
    rec = ProbeRecord(run_id=run_id, probe=number, request_rate=rate, state=state, passed=None)
    s = res.serving if res is not None else None
    if res is None or s is None:
        return rec
    j = judge(entry.rule, entry.slo, res)
    rec.passed, rec.attainment = j.passed, j.attainment
    rec.achieved_rate, rec.completed, rec.failed = s.achieved_rate, s.completed, s.failed
    rec.ttft_p99_ms = s.ttft_ms.p99 if s.ttft_ms else None
    rec.tpot_p99_ms = s.tpot_ms.p99 if s.tpot_ms else None
    rec.energy_per_request_j = s.energy_per_request_j
    rec.energy_per_output_token_j = s.energy_per_output_token_j
    rec.energy_unavailable_reason = s.unavailable_reason or res.energy.unavailable_reason
    return rec
