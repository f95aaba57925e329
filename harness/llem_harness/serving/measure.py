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
from typing import TYPE_CHECKING, Any

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
from llem_harness.phases import kv_reuse
from llem_harness.steady import tokens_within
from llem_harness.summary import stats

if TYPE_CHECKING:
    from llem_harness.serving.backend import ServingBackend

MAX_ERRORS = 5
SHORT_STEADY_S = 10.0  # as the measured window's short-window warning (run.py)


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["ok"]]


def tpot_ms(r: dict[str, Any]) -> float | None:
    n = int(r["output_tokens"] or 0)
    return (r["last_token_s"] - r["first_token_s"]) * 1000 / (n - 1) if n > 1 else None


def slo_met(r: dict[str, Any], ttft_max: float | None, tpot_max: float | None) -> bool:
    if not r["ok"]:
        return False
    if ttft_max is not None and (r["first_token_s"] - r["sent_s"]) * 1000 > ttft_max:
        return False
    per_token = tpot_ms(r)
    return tpot_max is None or per_token is None or per_token <= tpot_max


def _sends(records: list[dict[str, Any]]) -> list[float]:
    """The send times, sorted; a request that failed before it was sent has none."""
    return sorted(r["sent_s"] for r in records if r.get("sent_s") is not None)


def steady_window(records: list[dict[str, Any]]) -> tuple[float, float] | str:
    """(start, end) on the records' clock, or why there is none."""
    done = _ok(records)
    sends = _sends(records)
    if len(sends) < 2 or not done:
        return f"{len(sends)} request(s) sent, {len(done)} completed: too few for a steady window"
    ramp = statistics.median(r["done_s"] - r["sent_s"] for r in done)
    start, end = sends[0] + ramp, sends[-1]
    if end <= start:
        return (
            f"the requests were sent within {sends[-1] - sends[0]:.3f} s, less than one median "
            f"request latency ({ramp:.3f} s): the load never left its ramp-up (a finite "
            "request_rate and more requests give a steady window)"
        )
    return start, end


def _window(
    records: list[dict[str, Any]],
    t0: float,
    t1: float,
    energy: float | None,
    why: str | None,
    opened: float,
) -> ServingWindow:
    done = _ok(records)
    spans = [(r["first_token_s"], r["last_token_s"], int(r["output_tokens"] or 0)) for r in done]
    tokens = tokens_within(spans, t0, t1)
    completed = sum(1 for r in done if t0 <= r["done_s"] <= t1)
    if why is None and energy is not None and not (completed and tokens):
        why = f"{completed} requests completed and {tokens} tokens came inside the window"
    return ServingWindow(
        start_s=t0 - opened,
        duration_s=t1 - t0,
        completed=completed,
        output_tokens=tokens,
        energy_j=energy,
        energy_per_request_j=energy / completed if energy is not None and completed else None,
        energy_per_output_token_j=energy / tokens if energy is not None and tokens else None,
        unavailable_reason=why,
    )


def serving_block(
    cfg: ExperimentConfig,
    records: list[dict[str, Any]],
    cost: dict[str, float | None],
    opened: float,
    duration: float,
    total_j: float | None,
    why_no_energy: str | None,
    samples: list[Sample],
    origin: float | None,
) -> Serving:
    """`opened` is the measured window's start (time.monotonic()), `duration` and `total_j`
    its length and energy; `samples` the power timeseries, whose `t_s` counts from
    `origin` on the same clock."""
    opts = cfg.serving_options()
    done = _ok(records)
    sends = _sends(records) or [opened]
    first = sends[0]
    last_done = max((r["done_s"] for r in records if r.get("done_s") is not None), default=first)
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
    cpu, wall = cost.get("cpu_s"), cost.get("wall_s")
    errors = list(dict.fromkeys(str(r["error"]) for r in records if not r["ok"]))
    return Serving(
        request_rate=opts.request_rate,
        achieved_rate=(len(sends) - 1) / (sends[-1] - first) if sends[-1] > first else None,
        arrival=opts.arrival,
        burstiness=opts.burstiness,
        max_concurrency=opts.max_concurrency,
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
        ttft_ms=stats([(r["first_token_s"] - r["sent_s"]) * 1000 for r in done]),
        tpot_ms=stats([v for v in map(tpot_ms, done) if v is not None]),
        e2e_ms=stats([(r["done_s"] - r["sent_s"]) * 1000 for r in done]),
        errors=errors[:MAX_ERRORS],
        load_generator=LoadGeneratorCost(
            cpu_s=cpu,
            wall_s=wall,
            cpu_fraction=cpu / wall if cpu is not None and wall else None,
            unavailable_reason=None if cpu is not None else "its rusage could not be read",
        ),
    )


def write_serving_requests(
    path: Path, records: list[dict[str, Any]], opened: float, cfg: ExperimentConfig
) -> int:
    """Every request of the measured load as Parquet, times in seconds since the measured
    window opened. `ok` and `slo_met` are 0/1 (`slo_met` null without an SLO)."""
    from llem_harness import __version__
    from llem_harness.parquet import Column, write_parquet

    slo = cfg.serving_options().slo
    has_slo = slo.ttft_ms is not None or slo.tpot_ms is not None

    def rel(key: str) -> list[int | float | None]:
        return [r[key] - opened if r.get(key) is not None else None for r in records]

    columns = [
        Column("request", "int32", [int(r["id"]) for r in records]),
        Column("prompt_tokens", "int32", [r.get("prompt_tokens") for r in records]),
        Column("output_tokens", "int32", [r.get("output_tokens") for r in records]),
        Column("scheduled_s", "double", rel("scheduled_s")),
        Column("submit_s", "double", rel("sent_s")),
        Column("first_token_s", "double", rel("first_token_s")),
        Column("last_token_s", "double", rel("last_token_s")),
        Column("done_s", "double", rel("done_s")),
        Column("ok", "int32", [int(bool(r["ok"])) for r in records]),
        Column(
            "slo_met",
            "int32",
            [int(slo_met(r, slo.ttft_ms, slo.tpot_ms)) if has_slo else None for r in records],
        ),
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
) -> None:
    """Fill a serving run's `serving`, `requests`, `phases` and `flops`, and its warnings."""
    cfg, records = result.config, backend.records
    result.serving = serving = serving_block(
        cfg, records, backend.loadgen_cost, opened, duration, reading.total_j,
        reading.unavailable_reason, meter.samples(), meter.clock_origin(),
    )  # fmt: skip
    rows = write_serving_requests(run_dir / REQUESTS_FILE, records, opened, cfg)
    result.requests = RequestsFile(rows=rows)
    result.phases = Phases(
        prefill=PhaseFigures(unavailable_reason=NO_PHASES),
        decode=PhaseFigures(unavailable_reason=NO_PHASES),
    )
    done = _ok(records)
    reuse = kv_reuse(cfg) or natural_flops(cfg.output_length)
    result.responses = responses_block(
        cfg.output_length, [int(r["output_tokens"] or 0) for r in done], None,
        result.energy.total_j, result.energy.unavailable_reason, None,
    )  # fmt: skip
    result.responses.file = REQUESTS_FILE  # every request's lengths are there
    result.flops = flops_block(
        cfg.model, cfg.weights, cfg.precision, [int(r["prompt_tokens"] or 0) for r in done],
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
    short = sum(1 for r in done if int(r["output_tokens"] or 0) != cfg.max_output_tokens)
    if short and cfg.output_length == "fixed":
        result.warnings.append(
            f"{short} completed requests returned a length other than max_output_tokens "
            f"({cfg.max_output_tokens}): the server did not honour the fixed output length"
        )
