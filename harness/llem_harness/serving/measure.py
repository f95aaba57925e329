"""The serving scenario's figures: the steady window, SLOs, and the per-request file.

**The steady window** (docs/serving.md). Requests arrive over time, so the engine's load
rises from nothing as the first requests come in, holds while arrivals and completions
balance, and falls once arrivals stop. The window excludes both ends:

    start = the first request's send + the median request latency (send to last byte)
            (the in-flight count builds up over about one request's lifetime)
    end   = the last request's send: from then on nothing arrives, and the drain begins

There is none when the sends span less than one median latency (a request rate of `inf`, or
too few requests for the rate): the figures are null with that reason, and `whole` has the
run's. Energy is the integral of the sampled power over the window; tokens inside it are
counted with each request's tokens spread evenly between its first and last token, and
requests by their completion inside it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from llem_harness.config import ExperimentConfig
from llem_harness.contract import (
    REQUESTS_FILE,
    ExperimentResult,
    Flops,
    LoadGeneratorCost,
    PhaseFigures,
    Phases,
    Serving,
    ServingWindow,
)
from llem_harness.contract_files import RequestsFile
from llem_harness.energy.base import EnergyMeter, Sample, WindowReading
from llem_harness.energy.timeseries import power_integral_j
from llem_harness.figures import natural_flops, responses_block
from llem_harness.flops import flops_block
from llem_harness.parquet import Column
from llem_harness.phases import kv_reuse
from llem_harness.serving.records import RequestRecord, completed
from llem_harness.steady import tokens_within
from llem_harness.summary import stats

if TYPE_CHECKING:
    from llem_harness.serving.backend import ServingBackend

MAX_ERRORS = 5
SHORT_STEADY_S = 10.0  # as the measured window's short-window warning (run.py)


def slo_met(r: RequestRecord, ttft_max: float | None, tpot_max: float | None) -> bool:
    c = r.completed()
    if c is None:
        return False
    if ttft_max is not None and c.ttft_ms > ttft_max:
        return False
    per_token = c.tpot_ms
    return tpot_max is None or per_token is None or per_token <= tpot_max


def attainment_each(
    records: list[RequestRecord], ttft_max: float | None, tpot_max: float | None
) -> dict[str, float]:
    """Each objective's own share of the requests sent: `ttft_ms` counts the requests whose
    TTFT met it, `tpot_ms` those whose TPOT did (a one-token response has no TPOT and meets
    it); a failed request meets neither."""
    if not records:
        return {}
    out: dict[str, float] = {}
    if ttft_max is not None:
        out["ttft_ms"] = sum(slo_met(r, ttft_max, None) for r in records) / len(records)
    if tpot_max is not None:
        out["tpot_ms"] = sum(slo_met(r, None, tpot_max) for r in records) / len(records)
    return out


def _sends(records: list[RequestRecord]) -> list[float]:
    """The send times, sorted; a request that failed before it was sent has none."""
    return sorted(r.sent_s for r in records if r.sent_s is not None)


def steady_window(records: list[RequestRecord]) -> tuple[float, float] | str:
    """(start, end) on the records' clock, or why there is none."""
    done = completed(records)
    sends = _sends(records)
    if len(sends) < 2 or not done:
        return f"{len(sends)} request(s) sent, {len(done)} completed: too few for a steady window"
    ramp = statistics.median(c.done_s - c.sent_s for c in done)
    start, end = sends[0] + ramp, sends[-1]
    if end <= start:
        return (
            f"the requests were sent within {sends[-1] - sends[0]:.3f} s, less than one median "
            f"request latency ({ramp:.3f} s): the load never left its ramp-up (a finite "
            "request_rate and more requests give a steady window)"
        )
    return start, end


def _window(
    records: list[RequestRecord],
    t0: float,
    t1: float,
    energy: float | None,
    why: str | None,
    opened: float,
) -> ServingWindow:
    done = completed(records)
    spans = [(c.first_token_s, c.last_token_s, c.output_tokens) for c in done]
    tokens = tokens_within(spans, t0, t1)
    inside = sum(1 for c in done if t0 <= c.done_s <= t1)
    if why is None and energy is not None and not (inside and tokens):
        why = f"{inside} requests completed and {tokens} tokens came inside the window"
    return ServingWindow(
        start_s=t0 - opened,
        duration_s=t1 - t0,
        completed=inside,
        output_tokens=tokens,
        energy_j=energy,
        energy_per_request_j=energy / inside if energy is not None and inside else None,
        energy_per_output_token_j=energy / tokens if energy is not None and tokens else None,
        unavailable_reason=why,
    )


def serving_block(
    cfg: ExperimentConfig,
    records: list[RequestRecord],
    cost: dict[str, float | None],
    opened: float,
    duration: float,
    total_j: float | None,
    why_no_energy: str | None,
    samples: list[Sample],
    origin: float | None,
    arrival_seed: int | None = None,
) -> Serving:
    """`opened` is the measured window's start (time.monotonic()), `duration` and `total_j`
    its length and energy; `samples` the power timeseries, whose `t_s` counts from
    `origin` on the same clock."""
    opts = cfg.serving_options()
    done = completed(records)
    sends = _sends(records) or [opened]
    first = sends[0]
    last_done = max((r.done_s for r in records if r.done_s is not None), default=first)
    whole = _window(records, opened, opened + duration, total_j, why_no_energy, opened)
    found = steady_window(records)
    reason: str | None
    if isinstance(found, str):
        steady, reason = ServingWindow(unavailable_reason=found), found
    else:
        t0, t1 = found
        energy: float | None = None
        if why_no_energy is not None:
            why: str | None = why_no_energy
        elif origin is None or not samples:
            why = "no power timeseries to integrate over the window"
        else:
            energy = power_integral_j(samples, t0 - origin, t1 - origin)
            why = None if energy is not None else "too few power samples inside the window"
        steady = _window(records, t0, t1, energy, why, opened)
        reason = steady.unavailable_reason
    ttft_max, tpot_max = opts.slo.ttft_ms, opts.slo.tpot_ms
    has_slo = ttft_max is not None or tpot_max is not None
    met = sum(1 for r in records if slo_met(r, ttft_max, tpot_max))
    span = last_done - first
    cpu, wall, senders = cost.get("cpu_s"), cost.get("wall_s"), cost.get("senders")
    errors = list(dict.fromkeys(str(r.error) for r in records if not r.ok))
    return Serving(
        request_rate=opts.request_rate,
        achieved_rate=(len(sends) - 1) / (sends[-1] - first) if sends[-1] > first else None,
        arrival=opts.arrival,
        burstiness=opts.burstiness,
        max_concurrency=opts.max_concurrency,
        arrival_seed=arrival_seed,
        arrival_per_cycle=opts.arrival_per_cycle,
        trace=Path(opts.trace).name if opts.trace is not None else None,
        trace_scale=opts.trace_scale if opts.trace is not None else None,
        requests=len(records),
        completed=len(done),
        failed=len(records) - len(done),
        duration_s=span,
        energy_per_request_j=steady.energy_per_request_j,
        energy_per_output_token_j=steady.energy_per_output_token_j,
        unavailable_reason=reason,
        steady=steady,
        whole=whole,
        slo={"ttft_ms": ttft_max, "tpot_ms": tpot_max},
        goodput_rps=met / span if has_slo and span > 0 else None,
        slo_attainment=met / len(records) if has_slo else None,
        slo_attainment_each=attainment_each(records, ttft_max, tpot_max),
        ttft_ms=stats([c.ttft_ms for c in done]),
        tpot_ms=stats([c.tpot_ms for c in done if c.tpot_ms is not None]),
        e2e_ms=stats([c.e2e_ms for c in done]),
        errors=errors[:MAX_ERRORS],
        load_generator=LoadGeneratorCost(
            cpu_s=cpu,
            wall_s=wall,
            cpu_fraction=cpu / wall if cpu is not None and wall else None,
            unavailable_reason=None if cpu is not None else "its rusage could not be read",
            senders=int(senders) if senders is not None else None,
        ),
    )


def write_serving_requests(
    path: Path,
    records: list[RequestRecord],
    opened: float,
    cfg: ExperimentConfig,
    extra: list[Column] | None = None,
) -> int:
    """Every request of the measured load as Parquet, times in seconds since the measured
    window opened. `ok` and `slo_met` are 0/1 (`slo_met` null without an SLO); `extra`
    columns (a quality section's `text` and `correct`) follow."""
    from llem_harness import __version__
    from llem_harness.parquet import write_parquet

    slo = cfg.serving_options().slo
    has_slo = slo.ttft_ms is not None or slo.tpot_ms is not None

    def rel(times: list[float | None]) -> list[int | float | None]:
        return [None if t is None else t - opened for t in times]

    columns = [
        Column("request", "int32", [r.id for r in records]),
        Column("prompt_tokens", "int32", [r.prompt_tokens for r in records]),
        Column("output_tokens", "int32", [r.output_tokens for r in records]),
        Column("scheduled_s", "double", rel([r.scheduled_s for r in records])),
        Column("submit_s", "double", rel([r.sent_s for r in records])),
        Column("first_token_s", "double", rel([r.first_token_s for r in records])),
        Column("last_token_s", "double", rel([r.last_token_s for r in records])),
        Column("done_s", "double", rel([r.done_s for r in records])),
        Column("ok", "int32", [int(r.ok) for r in records]),
        Column(
            "slo_met",
            "int32",
            [int(slo_met(r, slo.ttft_ms, slo.tpot_ms)) if has_slo else None for r in records],
        ),
        *(extra or []),
    ]
    return write_parquet(path, columns, created_by=f"llem-harness {__version__}")


NO_PHASES = (
    "the serving scenario runs no prefill-only pass: requests arrive over time, so one "
    "request's prefill overlaps others' decode"
)


def finish_serving(
    result: ExperimentResult,
    backend: ServingBackend,
    meter: EnergyMeter,
    reading: WindowReading,
    duration: float,
    opened: float,
    run_dir: Path,
    extra: list[Column] | None = None,
) -> None:
    """Fill a serving run's `serving`, `requests`, `phases` and `flops`, and its warnings;
    `extra` columns go into the requests' file."""
    cfg, records = result.config, backend.records
    result.serving = serving = serving_block(
        cfg, records, backend.loadgen_cost, opened, duration, reading.total_j,
        reading.unavailable_reason, meter.samples(), meter.clock_origin(), backend.arrival_seed,
    )  # fmt: skip
    rows = write_serving_requests(run_dir / REQUESTS_FILE, records, opened, cfg, extra)
    result.requests = RequestsFile(rows=rows)
    result.phases = Phases(
        prefill=PhaseFigures(unavailable_reason=NO_PHASES),
        decode=PhaseFigures(unavailable_reason=NO_PHASES),
    )
    done = completed(records)
    reuse = kv_reuse(cfg) or natural_flops(cfg.output_length)
    result.responses = responses_block(
        cfg.output_length, [c.output_tokens for c in done], None,
        result.energy.total_j, result.energy.unavailable_reason, None,
    )  # fmt: skip
    result.responses.file = REQUESTS_FILE  # every request's lengths are there
    result.flops = flops_block(
        cfg.model, cfg.weights, cfg.precision, [c.prompt_tokens for c in done],
        cfg.max_output_tokens, duration, result.energy.total_j, result.environment.gpus,
    ) if reuse is None else Flops(unavailable_reason=reuse)  # fmt: skip
    if serving.failed:
        result.warnings.append(
            f"{serving.failed} of {serving.requests} requests failed: {'; '.join(serving.errors)}"
        )
    steady = serving.steady.duration_s
    if steady is not None and steady < SHORT_STEADY_S:
        result.warnings.append(
            f"short steady window: {steady:.2f} s < {SHORT_STEADY_S:g} s; the power sampling "
            "makes its energy imprecise, so send more requests or for longer"
        )
    asked = backend.max_tokens
    short = sum(1 for c in done if c.output_tokens != asked.get(c.id, cfg.max_output_tokens))
    if short and cfg.output_length == "fixed":
        result.warnings.append(
            f"{short} completed requests returned a length other than the one asked "
            f"(max_output_tokens, {cfg.max_output_tokens}, or the trace's): the server did "
            "not honour the fixed output length"
        )
