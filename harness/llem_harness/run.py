"""`llem-harness run RUN_DIR`: one experiment, start to finish, under the exchange contract.

Phases: config -> baseline (idle power, before the model loads, while the engine imports:
baseline.py) -> load (the model) -> warmup (full-length passes until throughput settles) ->
measure (synchronised window) -> write. Each phase's wall time goes into the result's
`timing` block; persistent compile caches are set up first, before any engine is imported
(caches.py).
"""

from __future__ import annotations

import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem_harness import termination
from llem_harness.backends import engine, import_engine
from llem_harness.backends.base import Backend, PassResult
from llem_harness.baseline import baseline_beside_imports
from llem_harness.caches import configure_compile_caches
from llem_harness.contract import (
    CO2,
    ERROR_FILE,
    EXPERIMENT_FILE,
    RESULT_FILE,
    TIMESERIES_FILE,
    Energy,
    ErrorInfo,
    ExperimentResult,
    Latency,
    Memory,
    Phase,
    RunRequest,
    Tokens,
    Warmup,
    atomic_write_json,
    emit,
)
from llem_harness.contract_files import TimeseriesSummary
from llem_harness.datasets import load_prompt_ids
from llem_harness.energy import (
    CodeCarbonTracker,
    EnergyMeter,
    adjusted_energy_j,
    co2_kg,
    make_meter,
    write_timeseries,
)
from llem_harness.energy.nvml_device import run_gpus
from llem_harness.energy.rapl import RaplReader, cpu_fields
from llem_harness.engine_args import EngineArgsError
from llem_harness.environment import snapshot
from llem_harness.figures import offline_figures
from llem_harness.phases import PREFILL_MIN_S, prefill_pass, quiet_gc
from llem_harness.quantization import CheckpointMismatch, gpu_problem, library_problem
from llem_harness.serving.backend import ServingBackend
from llem_harness.serving.measure import finish_serving
from llem_harness.steady import measure_steady
from llem_harness.summary import cv, stats
from llem_harness.termination import Terminated, check_terminated
from llem_harness.timing import PhaseClock

SHORT_WINDOW_S = 10.0
CV_WINDOW = 3  # warmup settles when the CV of the last 3 passes is under the threshold


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Harness:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.phase: Phase = "config"
        self.meter: EnergyMeter | None = None
        self.backend: Backend | None = None
        self.clock = PhaseClock()
        self.caches: dict[str, Any] = {}
        self.notes: list[str] = []  # warnings for result.json from phases before the result

    def set_phase(self, phase: Phase, **fields: Any) -> None:
        check_terminated()
        self.clock.lap(self.phase)
        self.phase = phase
        emit("phase", phase=phase, **fields)

    def run(self) -> int:
        for stale in (RESULT_FILE, ERROR_FILE):
            (self.run_dir / stale).unlink(missing_ok=True)
        previous = termination.install()
        try:
            self.caches = configure_compile_caches()  # before any engine import
            self._run()
            return 0
        except BaseException as exc:  # every failure leaves an error.json behind
            self._write_error(exc)
            if isinstance(exc, KeyboardInterrupt | Terminated):
                return 130 if isinstance(exc, KeyboardInterrupt) else 143
            return 2 if self.phase == "config" else 1
        finally:
            termination.restore(previous)
            try:
                if self.meter is not None:
                    self.meter.stop()
            finally:  # the engine (a serving run's server) is ended whatever the meter did
                if self.backend is not None:
                    self.backend.close()

    def _write_error(self, exc: BaseException) -> None:
        info = ErrorInfo(
            type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            traceback="".join(traceback.format_exception(exc)),
            phase=self.phase,
        )
        try:
            atomic_write_json(self.run_dir / ERROR_FILE, info.model_dump(mode="json"))
        finally:
            emit("error", type=info.type, message=info.message, phase=info.phase)

    def _run(self) -> None:
        started = now()
        self.set_phase("config")
        try:
            text = (self.run_dir / EXPERIMENT_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.run_dir / EXPERIMENT_FILE} does not exist") from None
        try:
            req = RunRequest.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"malformed {EXPERIMENT_FILE}: {exc}") from None
        cfg = req.config
        serving = cfg.scenario == "serving"  # the engine's server under load: serving/
        spec = engine(cfg.backend)
        backend = self.backend = ServingBackend(cfg.backend) if serving else spec.make_backend()
        tracker = self._co2_tracker(req)
        if cfg.quantization != "none":  # the GPU this run got, which the host may not see
            gpus = run_gpus(spec.gpus(cfg))
            problem = None if gpus is None else gpu_problem(cfg.backend, cfg.quantization, gpus)
            problem = problem or library_problem(cfg.backend, cfg.quantization)
            if problem is not None:
                raise ValueError(problem)

        self.set_phase("baseline", seconds=req.measurement.baseline_seconds)
        meter = self.meter = make_meter(req.measurement, _gpu_indices(spec.gpus(cfg)))
        meter.start()
        self.clock.lap("baseline")  # the meter's setup counts as the baseline phase's
        base = baseline_beside_imports(
            meter,
            req.measurement.baseline_seconds,
            lambda: import_engine("" if serving else cfg.backend),
        )
        baseline_w = base.power_w
        self.notes += [base.warning] if base.warning else []
        self.clock.assign(
            baseline=base.baseline_s, imports=base.imports_s, overlapped=base.overlapped_s
        )

        self.set_phase("load", model=cfg.model, weights=cfg.weights)
        try:
            backend.load(cfg, self.run_dir)
        except (EngineArgsError, CheckpointMismatch):  # an engine_args key no entry point
            # takes, or a checkpoint holding another quantization: the study's to fix
            self.phase = "config"
            raise
        prompts = load_prompt_ids(cfg, backend.tokenize, backend.vocab_size, self.run_dir)

        self.set_phase("warmup")
        warmup = self._warmup(
            backend, prompts, cfg.warmup_runs, cfg.warmup_max_runs, cfg.warmup_cv_threshold
        )

        self.set_phase("measure", prompts=len(prompts))
        rapl = RaplReader()  # CPU packages and DRAM, over the same window
        with quiet_gc():
            backend.synchronize()
            meter.begin_window()
            rapl.begin()
            if tracker is not None:
                tracker.start()
            t0, t0_mono = time.perf_counter(), time.monotonic()
            measured = backend.generate(prompts, timed=True)
            backend.synchronize()
            duration = time.perf_counter() - t0
            reading = meter.end_window()
            cpu = rapl.end()
            co2_tracked = tracker.stop() if tracker is not None else None

        # the phases; without energy to measure, one pass gives the duration
        min_s = 0.0 if meter.name == "none" else PREFILL_MIN_S
        pre = None if serving else prefill_pass(backend, meter, prompts, min_s)

        self.set_phase("write")
        rows = write_timeseries(meter.samples(), self.run_dir / TIMESERIES_FILE)
        result = self._result(
            req, backend, meter, measured, duration, reading, baseline_w, warmup, started, rows
        )
        result.energy = result.energy.model_copy(update=cpu_fields(cpu, reading.cpu))
        if isinstance(backend, ServingBackend):
            finish_serving(result, backend, meter, reading, duration, t0_mono, self.run_dir)
        else:
            offline_figures(
                result, measured, prompts, pre, duration, reading, t0_mono, self.run_dir
            )
        if tracker is not None:
            result.co2 = CO2(
                kg=co2_tracked,
                method=tracker.method,
                pue=req.measurement.datacenter_pue,
                unavailable_reason=None
                if co2_tracked is not None
                else "CodeCarbon measured nothing",
            )
        self.clock.lap("write")
        result.timing = self.clock.timing()
        check_terminated()  # the last chance: a result after SIGTERM would read as completed
        atomic_write_json(self.run_dir / RESULT_FILE, result.model_dump(mode="json"))
        emit(
            "done",
            throughput_tokens_per_s=result.throughput_tokens_per_s,
            energy_j=result.energy.total_j,
        )

    @staticmethod
    def _co2_tracker(req: RunRequest) -> CodeCarbonTracker | None:
        ms = req.measurement
        if ms.co2_backend != "codecarbon":
            return None
        if ms.country_iso_code is None:
            raise ValueError(
                "co2_backend: codecarbon needs measurement.country_iso_code (e.g. FRA): "
                "CodeCarbon takes the grid mix from the country"
            )
        return CodeCarbonTracker(ms.country_iso_code, pue=ms.datacenter_pue)

    def _warmup(
        self,
        backend: Backend,
        prompts: list[list[int]],
        min_runs: int,
        max_runs: int,
        threshold: float,
    ) -> Warmup:
        groups = backend.warmup_batches(prompts)
        rates: list[float] = []
        while len(rates) < max_runs:
            if len(rates) >= min_runs and _settled(rates, threshold):
                break
            with quiet_gc():
                t0 = time.perf_counter()
                out = 0
                for group in groups:
                    out += backend.generate(group, timed=False).output_tokens
                    check_terminated()
                backend.synchronize()
                rates.append(out / (time.perf_counter() - t0))
            emit("warmup", run=len(rates), tokens_per_s=round(rates[-1], 2))
        final = cv(rates[-CV_WINDOW:]) if len(rates) >= 2 else None
        converged = _settled(rates, threshold)
        return Warmup(
            runs=len(rates),
            converged=converged,
            final_cv=final,
            threshold=threshold,
            throughputs=[round(r, 3) for r in rates],
        )

    def _result(
        self,
        req: RunRequest,
        backend: Backend,
        meter: EnergyMeter,
        measured: PassResult,
        duration: float,
        reading: Any,
        baseline_w: float | None,
        warmup: Warmup,
        started: str,
        rows: int,
    ) -> ExperimentResult:
        cfg, ms = req.config, req.measurement
        warnings = list(reading.warnings) + meter.device_warnings() + self.notes
        if cfg.warmup_max_runs > 0 and not warmup.converged:
            why = (
                f"CV {warmup.final_cv:.4f} > {warmup.threshold}"
                if warmup.runs >= CV_WINDOW and warmup.final_cv is not None
                else f"settling is judged on {CV_WINDOW} passes"
            )
            warnings.append(
                f"warmup did not settle: {why} after {warmup.runs} passes (raise warmup_max_runs)"
            )
        if duration < SHORT_WINDOW_S and not any("short" in w for w in warnings):
            warnings.append(f"short measurement window: {duration:.2f} s < {SHORT_WINDOW_S:g} s")
        total = reading.total_j
        adjusted = adjusted_energy_j(total, baseline_w, duration)
        energy = Energy(
            total_j=total,
            adjusted_j=adjusted,
            baseline_power_w=baseline_w,
            per_device_j=reading.per_device_j,
            method=reading.method,
            unavailable_reason=reading.unavailable_reason,
        )
        co2 = CO2(
            kg=co2_kg(total, ms.carbon_intensity_gco2_kwh, ms.datacenter_pue),
            method="formula" if total is not None else None,
            carbon_intensity_gco2_kwh=ms.carbon_intensity_gco2_kwh,
            pue=ms.datacenter_pue,
            unavailable_reason=None if total is not None else reading.unavailable_reason,
        )
        peak, peak_reason = backend.peak_memory_mb()
        latency = Latency(
            ttft_ms=stats(measured.ttft_ms),
            itl_ms=stats(measured.itl_ms),
            request_ms=stats(measured.request_ms),
            mode=backend.latency_mode,
            unavailable_reason=None
            if measured.ttft_ms
            else f"the {backend.name} backend reported no per-request token times",
        )
        version = backend.version()
        return ExperimentResult(
            experiment_id=req.run.run_id,
            run=req.run,
            config=cfg,
            config_hash=cfg.config_hash(),
            backend=cfg.backend,
            backend_version=version,
            backend_details=backend.details(),
            model=cfg.model,
            runner=req.runner,
            started_at=started,
            ended_at=now(),
            tokens=Tokens(input=measured.input_tokens, output=measured.output_tokens),
            duration_s=duration,
            throughput_tokens_per_s=measured.output_tokens / duration,
            energy=energy,
            energy_per_output_token_j=None if total is None else total / measured.output_tokens,
            latency=latency,
            memory=Memory(peak_mb=peak, unavailable_reason=peak_reason),
            co2=co2,
            warmup=warmup,
            measurement=ms,
            timeseries=TimeseriesSummary(
                rows=rows,
                power_integral_j=reading.power_integral_j,
                window_start_s=reading.start_s,
                window_end_s=reading.end_s,
            ),
            steady_state=None  # a serving run's steady window is in its `serving` block
            if ms.window != "steady_state" or cfg.scenario == "serving"
            else measure_steady(
                measured.spans,
                engine(cfg.backend).concurrency(cfg),
                meter.samples(),
                meter.clock_origin(),
            ),
            environment=snapshot(
                meter.devices(),
                cfg.backend,
                version,
                req.runner,
                ms,
                self.caches,
                gpu_reason=reading.unavailable_reason,
            ),
            warnings=warnings,
        )


def _settled(rates: list[float], threshold: float) -> bool:
    spread = cv(rates[-CV_WINDOW:]) if len(rates) >= CV_WINDOW else None
    return spread is not None and spread <= threshold


def _gpu_indices(n: int) -> list[int] | None:
    """NVML indices of CUDA ordinals 0..n-1, or None to let the meter decide."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # ordinals in NVML (PCI) order
    try:
        from llem_harness.energy.nvml_device import visible_gpu_indices

        visible = visible_gpu_indices()
    except Exception:
        return None
    return visible[:n] if visible else None


def run_experiment(run_dir: str | Path) -> int:
    return Harness(Path(run_dir)).run()
