"""`llem-harness run RUN_DIR`: one experiment, start to finish, under the exchange contract.

The phases, the same for every scenario: config -> baseline (idle power, before the model
loads, while the engine imports: baseline.py) -> load (the model) -> warmup (full-length passes
until throughput settles: warmup.py) -> measure (the synchronised window: window.py, then the
scenario's further passes) -> write (assemble.py, then the scenario's own blocks). What differs
between scenarios is in scenarios/. Each phase's wall time goes into the result's `timing`
block; persistent compile caches are set up first, before any engine is imported (caches.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem_harness import termination
from llem_harness.assemble import build_result, now, tracked_co2
from llem_harness.backends import engine
from llem_harness.backends.base import Backend
from llem_harness.backends.spec import DTYPES
from llem_harness.baseline import baseline_beside_imports
from llem_harness.caches import configure_compile_caches
from llem_harness.contract import TIMESERIES_FILE, Phase, emit
from llem_harness.contract_env import CompileCaches
from llem_harness.datasets import load_prompt_ids
from llem_harness.energy import EnergyMeter, make_meter, write_timeseries
from llem_harness.energy.co2 import tracker_for
from llem_harness.energy.measurement import Meters
from llem_harness.energy.nvml_device import compute_processes, cuda_gpu_indices
from llem_harness.engine_args import EngineArgsError
from llem_harness.exchange import clear_outcome, read_request, write_error, write_result
from llem_harness.gguf_dense import loaded_as
from llem_harness.gguf_model import describe, is_gguf, locate
from llem_harness.quantization import CheckpointMismatch, run_problem
from llem_harness.scenarios import RunParts, scenario_for
from llem_harness.serving.senders import SendRateError
from llem_harness.termination import Terminated, check_terminated
from llem_harness.timing import PhaseClock
from llem_harness.validity import evaluate
from llem_harness.warmup import warm_up
from llem_harness.window import measure_window, passes_note


class Harness:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.phase: Phase = "config"
        self.meter: EnergyMeter | None = None
        self.backend: Backend | None = None
        self.clock = PhaseClock()
        self.caches: CompileCaches | None = None
        self.notes: list[str] = []  # warnings for result.json from phases before the result

    def set_phase(self, phase: Phase, **fields: Any) -> None:
        check_terminated()
        self.clock.lap(self.phase)
        self.phase = phase
        emit("phase", phase=phase, **fields)

    def run(self) -> int:
        clear_outcome(self.run_dir)
        previous = termination.install()
        try:
            self.caches = configure_compile_caches()  # before any engine import
            self._run()
            return 0
        except BaseException as exc:  # every failure leaves an error.json behind
            write_error(self.run_dir, exc, self.phase)
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

    def _run(self) -> None:
        started = now()
        self.set_phase("config")
        req = read_request(self.run_dir)
        cfg, spec, scenario = req.config, engine(req.config.backend), scenario_for(req.config)
        backend = self.backend = scenario.backend(cfg)
        tracker = tracker_for(req.measurement)
        if problem := run_problem(cfg, spec.gpus(cfg)):  # the GPU it got, and its Python
            raise ValueError(problem)

        self.set_phase("baseline", seconds=req.measurement.baseline_seconds)
        gpus = cuda_gpu_indices(spec.gpus(cfg))
        meter = self.meter = make_meter(req.measurement, gpus)
        meter.start()
        self.clock.lap("baseline")  # the meter's setup counts as the baseline phase's
        seconds = req.measurement.baseline_seconds
        measured = [d.index for d in meter.devices()]  # none without a GPU meter
        base = baseline_beside_imports(
            meter,
            seconds,
            lambda: scenario.import_engine(cfg),
            processes=lambda: compute_processes(measured) if measured else None,
        )
        self.notes += [base.warning] if base.warning else []
        self.clock.assign(
            baseline=base.baseline_s, imports=base.imports_s, overlapped=base.overlapped_s
        )

        self.set_phase("load", model=cfg.model, weights=cfg.weights)
        try:
            backend.load(cfg, self.run_dir)
        except (EngineArgsError, CheckpointMismatch, SendRateError):  # an engine_args key no
            self.phase = "config"  # entry point takes, a checkpoint holding another
            raise  # quantization, or a request rate the load generator cannot keep here
        prompts = load_prompt_ids(cfg, backend.tokenize, backend.vocab_size, self.run_dir)

        self.set_phase("warmup")
        warmup = warm_up(
            backend, prompts, cfg.warmup_runs, cfg.warmup_max_runs, cfg.warmup_cv_threshold
        )

        policy = req.validity  # serving is not grown: its arrivals set the window
        min_s = policy.min_window_s if policy.grow_window and cfg.scenario == "offline" else 0.0
        self.set_phase("measure", prompts=len(prompts), min_window_s=min_s)
        meters = Meters(meter, tracker)
        window = measure_window(backend, meters, prompts, min_s)
        note = passes_note(window.passes, len(prompts), min_s, policy.profile)
        self.notes += [note] if note else []
        prompts = prompts * window.passes  # the requests the window's figures cover
        scenario.after_window(backend, meters, prompts)

        self.set_phase("write")
        rows = write_timeseries(meter.samples(), self.run_dir / TIMESERIES_FILE)
        result = build_result(
            req, backend, meter, window, base.power_w, warmup, started, rows, self.notes,
            self.caches,
        )  # fmt: skip
        result.window_repeats = window.passes
        if is_gguf(cfg.model):
            result.weights_file = describe(locate(cfg.model))
            result.weights_file.loaded_as = loaded_as(DTYPES[cfg.precision])
        result.energy.baseline_cuda_context = base.cuda_context
        scenario.finish(result, RunParts(backend, meter, prompts, window, self.run_dir))
        result.validity = evaluate(result, meter.samples(), window.measured.lengths, req.validity)
        if tracker is not None:
            result.co2 = tracked_co2(req, tracker, window)
        self.clock.lap("write")
        result.timing = self.clock.timing()
        check_terminated()  # the last chance: a result after SIGTERM would read as completed
        write_result(self.run_dir, result)


def run_experiment(run_dir: str | Path) -> int:
    return Harness(Path(run_dir)).run()
