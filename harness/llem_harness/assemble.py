"""The result of a run, from its parts: the request, the backend, the meter and the window.

What every scenario shares: tokens and throughput, energy (the GPU meter's, less the idle
baseline; the CPU and DRAM's from RAPL), CO2, latency, memory, the warmup, the timeseries'
summary, the steady-state window of an offline run, the environment, and the warnings. The
scenario's own blocks come after (scenarios/).
"""

from __future__ import annotations

from datetime import UTC, datetime

from llem_harness.backends import engine
from llem_harness.backends.base import Backend
from llem_harness.contract import (
    CO2,
    Energy,
    ExperimentResult,
    Latency,
    Memory,
    RunRequest,
    Tokens,
    Warmup,
)
from llem_harness.contract_env import CompileCaches
from llem_harness.contract_files import TimeseriesSummary
from llem_harness.energy import CodeCarbonTracker, EnergyMeter, adjusted_energy_j, co2_kg
from llem_harness.energy.rapl import cpu_fields
from llem_harness.environment import snapshot
from llem_harness.steady import measure_steady
from llem_harness.summary import stats
from llem_harness.warmup import unsettled_warning
from llem_harness.window import Window

SHORT_WINDOW_S = 10.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def build_result(
    req: RunRequest, backend: Backend, meter: EnergyMeter, window: Window, baseline_w: float | None,
    warmup: Warmup, started: str, rows: int, notes: list[str], caches: CompileCaches | None,
) -> ExperimentResult:  # fmt: skip
    cfg, ms, w = req.config, req.measurement, window
    measured, reading, total = w.measured, w.reading, w.reading.total_j
    version = backend.version()
    peak, peak_reason = backend.peak_memory_mb()
    steady = ms.window == "steady_state" and cfg.scenario == "offline"  # serving: its block
    return ExperimentResult(
        experiment_id=req.run.run_id, run=req.run, config=cfg, config_hash=cfg.config_hash(),
        backend=cfg.backend, backend_version=version, backend_details=backend.details(),
        model=cfg.model, runner=req.runner, started_at=started, ended_at=now(),
        tokens=Tokens(input=measured.input_tokens, output=measured.output_tokens),
        duration_s=w.duration, throughput_tokens_per_s=measured.output_tokens / w.duration,
        energy=_energy(w, baseline_w),
        energy_per_output_token_j=None if total is None else total / measured.output_tokens,
        latency=_latency(backend, w), memory=Memory(peak_mb=peak, unavailable_reason=peak_reason),
        co2=_co2(req, w), warmup=warmup, measurement=ms,
        timeseries=TimeseriesSummary(
            rows=rows, power_integral_j=reading.power_integral_j,
            window_start_s=reading.start_s, window_end_s=reading.end_s,
        ),
        steady_state=measure_steady(
            measured.spans, engine(cfg.backend).concurrency(cfg), meter.samples(),
            meter.clock_origin(),
        ) if steady else None,
        environment=snapshot(
            meter.devices(), cfg.backend, version, req.runner, ms, caches,
            gpu_reason=reading.unavailable_reason,
        ),
        warnings=_warnings(req, meter, w, warmup, notes),
    )  # fmt: skip


def _warnings(
    req: RunRequest, meter: EnergyMeter, w: Window, warmup: Warmup, notes: list[str]
) -> list[str]:
    warnings = list(w.reading.warnings) + meter.device_warnings() + notes
    unsettled = unsettled_warning(warmup, req.config.warmup_max_runs)
    warnings += [unsettled] if unsettled else []
    if w.duration < SHORT_WINDOW_S and not any("short" in x for x in warnings):
        warnings.append(f"short measurement window: {w.duration:.2f} s < {SHORT_WINDOW_S:g} s")
    return warnings


def _energy(w: Window, baseline_w: float | None) -> Energy:
    r = w.reading
    energy = Energy(
        total_j=r.total_j,
        adjusted_j=adjusted_energy_j(r.total_j, baseline_w, w.duration),
        baseline_power_w=baseline_w,
        per_device_j=r.per_device_j,
        method=r.method,
        unavailable_reason=r.unavailable_reason,
    )
    return energy.model_copy(update=cpu_fields(w.cpu, r.cpu))


def _co2(req: RunRequest, w: Window) -> CO2:
    ms, total = req.measurement, w.reading.total_j
    return CO2(
        kg=co2_kg(total, ms.carbon_intensity_gco2_kwh, ms.datacenter_pue),
        method="formula" if total is not None else None,
        carbon_intensity_gco2_kwh=ms.carbon_intensity_gco2_kwh,
        pue=ms.datacenter_pue,
        unavailable_reason=None if total is not None else w.reading.unavailable_reason,
    )


def tracked_co2(req: RunRequest, tracker: CodeCarbonTracker, w: Window) -> CO2:
    """CodeCarbon's figure for the window, in place of the formula's."""
    return CO2(
        kg=w.measurement.co2_kg,
        method=tracker.method,
        pue=req.measurement.datacenter_pue,
        unavailable_reason=None
        if w.measurement.co2_kg is not None
        else "CodeCarbon measured nothing",
    )


def _latency(backend: Backend, w: Window) -> Latency:
    m = w.measured
    return Latency(
        ttft_ms=stats(m.ttft_ms),
        itl_ms=stats(m.itl_ms),
        request_ms=stats(m.request_ms),
        mode=backend.latency_mode,
        unavailable_reason=None
        if m.ttft_ms
        else f"the {backend.name} backend reported no per-request token times",
    )
