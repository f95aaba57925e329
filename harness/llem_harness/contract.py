"""The exchange contract between host and harness: public API, versioned.

One directory per run, mounted at /llem/run:
  experiment.json     (orchestrator) RunRequest: the effective config + run identity + settings
  result.json         (harness, atomic) ExperimentResult
  error.json          (harness, atomic) ErrorInfo
  timeseries.parquet  (harness) one row per power sample
  requests.parquet    (harness) per-request timeline of the measured pass, where timed
  container.log       (orchestrator) the process's stdout+stderr
Progress goes to stdout as JSON lines: {"event": "phase", "phase": "load", ...}.
See docs/exchange-contract.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, model_validator

from llem_harness import contract_files as files
from llem_harness.config import ExperimentConfig
from llem_harness.contract_engine import EngineMetrics
from llem_harness.contract_env import BackendDetails, Environment, before
from llem_harness.contract_files import RequestsFile, TimeseriesSummary
from llem_harness.contract_files import StrictModel as _Model

# kept importable from here, where its callers import it (it lives in contract_files.py)
from llem_harness.contract_files import atomic_write_json as atomic_write_json
from llem_harness.contract_files import atomic_write_text as atomic_write_text
from llem_harness.contract_validity import Validity, ValidityPolicy
from llem_harness.gguf_model import WeightsFile
from llem_harness.quality import Quality

SCHEMA_VERSION = "1.12"
# The run directory's file names (contract_files.py), here too for the modules that read them.
EXPERIMENT_FILE = files.EXPERIMENT_FILE
RESULT_FILE = files.RESULT_FILE
RESPONSES_FILE = files.RESPONSES_FILE
ERROR_FILE = files.ERROR_FILE
TIMESERIES_FILE = files.TIMESERIES_FILE
REQUESTS_FILE = files.REQUESTS_FILE
LOG_FILE = files.LOG_FILE
Phase = Literal["config", "baseline", "load", "warmup", "measure", "write"]


class MeasurementSettings(_Model):
    """How to measure on this machine (user config `measurement:`), passed to the harness."""

    energy_backend: Literal["auto", "nvml", "zeus", "none"] = "auto"
    sample_interval_ms: int = Field(100, ge=10, le=60_000)
    carbon_intensity_gco2_kwh: float = Field(400.0, ge=0.0)
    datacenter_pue: float = Field(1.0, ge=1.0, le=5.0)
    co2_backend: Literal["formula", "codecarbon"] = "formula"
    country_iso_code: str | None = Field(
        None, min_length=3, max_length=3, description="grid mix for co2_backend: codecarbon"
    )
    baseline_seconds: float = Field(5.0, ge=0.0, le=600.0)
    # whole: the window spans every prompt. steady_state: also report the window in which
    # the engine runs saturated, ramp and drain excluded (continuous batching; steady.py).
    window: Literal["whole", "steady_state"] = "whole"


class RunnerInfo(_Model):
    type: str
    image: str | None = None
    image_digest: str | None = None


class RunIdentity(_Model):
    study_name: str
    study_id: str  # the results folder name: <study>_<UTC>
    design_hash: str
    run_id: str
    index: int
    cycle: int
    config_hash: str


class RunRequest(_Model):
    """Content of experiment.json."""

    schema_version: str = SCHEMA_VERSION
    config: ExperimentConfig
    run: RunIdentity
    measurement: MeasurementSettings = MeasurementSettings()
    runner: RunnerInfo = RunnerInfo(type="local")
    validity: ValidityPolicy = ValidityPolicy()  # 1.10: the profile's thresholds


class ErrorInfo(_Model):
    """Content of error.json: preferred over parsing logs."""

    schema_version: str = SCHEMA_VERSION
    type: str
    message: str
    traceback: str
    phase: Phase


class Stats(_Model):
    mean: float
    p50: float
    p90: float
    p99: float
    n: int


class Latency(_Model):
    ttft_ms: Stats | None = None
    itl_ms: Stats | None = None
    request_ms: Stats | None = None
    mode: str | None = None
    unavailable_reason: str | None = None


class Energy(_Model):
    """GPU energy (`total_j` and the rest), and since 1.4 the CPU packages' and DRAM's from
    RAPL over the same window (energy/rapl.py), each null with its own reason."""

    total_j: float | None = None
    adjusted_j: float | None = None
    baseline_power_w: float | None = None
    per_device_j: dict[str, float] | None = None
    method: str | None = None
    unavailable_reason: str | None = None
    cpu_j: float | None = None
    cpu_per_package_j: dict[str, float] | None = None
    cpu_unavailable_reason: str | None = None
    cpu_method: str | None = None  # "rapl" (energy/rapl.py) or "zeus" (Zeus's CPU monitor)
    dram_j: float | None = None
    dram_unavailable_reason: str | None = None
    # 1.10: whether a CUDA context was open on a measured GPU while the idle baseline was
    # taken (this process's, torch's view; or any process's, NVML's list); null: not known
    baseline_cuda_context: bool | None = None


class CO2(_Model):
    kg: float | None = None
    method: str | None = None
    carbon_intensity_gco2_kwh: float | None = None
    pue: float | None = None
    unavailable_reason: str | None = None


class Memory(_Model):
    peak_mb: float | None = None
    unavailable_reason: str | None = None


class Tokens(_Model):
    input: int
    output: int


class Warmup(_Model):
    runs: int
    converged: bool
    final_cv: float | None
    threshold: float
    throughputs: list[float]
    pass_seconds: list[float] = Field(default_factory=list)  # 1.10: each pass's wall time


class SteadyState(_Model):
    """Figures over the steady-state window, beside the whole-window ones."""

    concurrency: int
    start_s: float | None = None  # on the harness's monotonic clock
    duration_s: float | None = None
    output_tokens: int | None = None
    throughput_tokens_per_s: float | None = None
    energy_j: float | None = None
    energy_per_output_token_j: float | None = None
    unavailable_reason: str | None = None


class Responses(_Model):
    """The measured pass's responses (added in 1.6): their lengths, and energy per response
    beside energy per token. With `output_length: natural` a response ends at EOS."""

    output_length: str  # fixed | natural
    count: int
    output_tokens: Stats | None = None  # per response
    energy_per_response_j: float | None = None
    file: str | None = None  # responses.parquet: every response's prompt and output tokens
    unavailable_reason: str | None = None


class ServingWindow(_Model):
    """Energy over a stretch of a serving run (docs/serving.md)."""

    start_s: float | None = None  # seconds since the measured window opened
    duration_s: float | None = None
    completed: int | None = None  # requests that finished inside it
    output_tokens: int | None = None  # tokens emitted inside it
    energy_j: float | None = None
    energy_per_request_j: float | None = None
    energy_per_output_token_j: float | None = None
    unavailable_reason: str | None = None


class LoadGeneratorCost(_Model):
    """The load generator's own CPU time (user + system, every sender process's), so that its
    interference with the engine can be judged."""

    cpu_s: float | None = None
    wall_s: float | None = None
    cpu_fraction: float | None = None  # cpu_s / wall_s: the cores it kept busy
    unavailable_reason: str | None = None
    senders: int | None = None  # 1.12: sender processes


class Serving(_Model):
    """The serving scenario's figures (added in 1.6; docs/serving.md). The top-level energy
    figures are the steady window's (ramp-up and drain excluded); `whole` covers the run."""

    request_rate: float | Literal["inf"]
    achieved_rate: float | None = None  # requests sent per second, first send to last
    arrival: str
    burstiness: float = 1.0
    max_concurrency: int | None = None
    # 1.11: the arrival schedule's seed, and whether each cycle drew its own
    arrival_seed: int | None = None
    arrival_per_cycle: bool | None = None
    # 1.11: arrival: trace: the trace file the run replayed (its name in the run folder), and
    # its rate factor
    trace: str | None = None
    trace_scale: float | None = None
    requests: int
    completed: int
    failed: int
    duration_s: float  # the first send to the last response
    energy_per_request_j: float | None = None
    energy_per_output_token_j: float | None = None
    unavailable_reason: str | None = None  # why the steady figures are null
    steady: ServingWindow
    whole: ServingWindow
    slo: dict[str, float | None] = Field(default_factory=dict)
    goodput_rps: float | None = None  # requests meeting every SLO, per second of the run
    slo_attainment: float | None = None  # their share of all requests sent
    # 1.12: each objective's own share (`ttft_ms`, `tpot_ms`): the requests that met it, of all
    # requests sent (a failed one never does); the capacity search's `per: objective` rule
    slo_attainment_each: dict[str, float] = Field(default_factory=dict)
    ttft_ms: Stats | None = None
    tpot_ms: Stats | None = None
    e2e_ms: Stats | None = None
    errors: list[str] = Field(default_factory=list)  # up to 5 distinct failure messages
    load_generator: LoadGeneratorCost = LoadGeneratorCost()


class PhaseFigures(_Model):
    duration_s: float | None = None
    tokens: int | None = None  # prefill: input tokens; decode: output tokens after the first
    energy_j: float | None = None  # GPU energy (energy.total_j's measure)
    energy_per_token_j: float | None = None
    unavailable_reason: str | None = None
    # prefill (added in 1.5): how many one-token passes the window held; the figures above
    # are one pass's (the window's totals ÷ passes)
    passes: int | None = None


class Phases(_Model):
    """Prefill and decode apart (added in 1.4). A prefill-only pass (one output token per
    prompt) over the same prompts and batches is measured after the full pass, like it;
    decode is the full pass minus that pass (docs/exchange-contract.md, "Phases")."""

    prefill: PhaseFigures
    decode: PhaseFigures
    method: str = "prefill_pass_subtraction"


class Flops(_Model):
    """FLOPs of the measured pass from the model's config (added in 1.4; llem_harness/flops.py
    gives the count and what it leaves out). `mfu` divides `achieved_tflops` by the GPUs'
    dense peak for the precision; null with the reason where the GPU (or any GPU) is not
    known."""

    prefill: float | None = None
    decode: float | None = None
    total: float | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None
    energy_per_tflop_j: float | None = None
    unavailable_reason: str | None = None


class Timing(_Model):
    """Wall seconds per phase of the run (added in 1.2). `startup_s` runs from the process's
    start to the harness's (interpreter, harness imports); `imports_s` is the engine's imports
    (torch, transformers, vllm…), timed apart from `load_s` (model build, engine start,
    compilation). `harness_s` is the harness's own time, up to the final result.json write.
    Since 1.3 the idle baseline runs while the engine imports: `overlapped_s` is how long both
    ran at once, so the phases add up to `harness_s` + `overlapped_s`."""

    startup_s: float | None = None
    startup_unavailable_reason: str | None = None
    config_s: float | None = None
    baseline_s: float | None = None
    imports_s: float | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    measure_s: float | None = None
    write_s: float | None = None
    harness_s: float | None = None
    overlapped_s: float | None = None


class ExperimentResult(_Model):
    """Content of result.json."""

    schema_version: str = SCHEMA_VERSION
    experiment_id: str
    run: RunIdentity
    config: ExperimentConfig
    config_hash: str
    backend: str
    backend_version: str | None
    backend_details: SerializeAsAny[BackendDetails] = Field(default_factory=BackendDetails)
    model: str
    runner: RunnerInfo
    started_at: str
    ended_at: str
    tokens: Tokens
    duration_s: float
    throughput_tokens_per_s: float
    energy: Energy
    energy_per_output_token_j: float | None
    latency: Latency
    memory: Memory
    co2: CO2
    warmup: Warmup
    measurement: MeasurementSettings
    # 1.10: how many times the prompts went through the measured pass (> 1 when the
    # validity policy grew the window to its minimum length)
    window_repeats: int = 1
    timeseries: TimeseriesSummary = Field(default_factory=TimeseriesSummary)
    steady_state: SteadyState | None = None  # with measurement.window: steady_state
    # requests.parquet, with measurement.window: steady_state (1.2) or scenario: serving
    requests: RequestsFile | None = None
    timing: Timing | None = None  # 1.2
    flops: Flops | None = None  # 1.4
    phases: Phases | None = None  # 1.4
    serving: Serving | None = None  # 1.6, with scenario: serving
    responses: Responses | None = None  # 1.6
    environment: Environment = Field(default_factory=Environment)
    warnings: list[str] = Field(default_factory=list)
    validity: Validity | None = None  # 1.9: every rule's verdict (docs/validity.md)
    # 1.10: the engine's load in the window (engine_load.py; engine_metrics.parquet)
    engine_metrics: EngineMetrics | None = None
    weights_file: WeightsFile | None = None  # 1.10: the GGUF file loaded (gguf_model.py)
    # 1.10: answer quality, scored on the window's responses (quality.py), and its energy
    quality: Quality | None = None
    energy_per_correct_answer_j: float | None = None

    @model_validator(mode="after")
    def _upgrade(self) -> ExperimentResult:
        """Results of earlier schemas read as 1.8 results (contract_env.Environment.upgrade)."""
        if before(self.schema_version, (1, 8)):
            self.environment.upgrade(self.energy.unavailable_reason)
        return self


def schema_fingerprint() -> str:
    """Hash of the exchange schema; images carry it as a label for the host's handshake."""
    parts = {m.__name__: m.model_json_schema() for m in (RunRequest, ExperimentResult, ErrorInfo)}
    blob = json.dumps({"version": SCHEMA_VERSION, "schemas": parts}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def emit(event: str, **fields: Any) -> None:
    """One progress event as a JSON line on stdout, for the host's display."""
    sys.stdout.write(json.dumps({"event": event, "t": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()


def standalone_request(
    config: ExperimentConfig,
    *,
    run_id: str = "standalone",
    index: int = 1,
    measurement: MeasurementSettings | None = None,
) -> RunRequest:
    """A RunRequest for running the harness without a study (benchmarks, GPU tests)."""
    return RunRequest(
        config=config,
        run=RunIdentity(
            study_name="standalone",
            study_id="standalone",
            design_hash="-",
            run_id=run_id,
            index=index,
            cycle=1,
            config_hash=config.config_hash(),
        ),
        measurement=measurement or MeasurementSettings(),
    )
