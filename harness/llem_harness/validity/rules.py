"""The rules, each a function of one run's `Context` (docs/validity.md gives every number's
source). A rule that cannot be judged says `unknown` and why; it never passes by default."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from llem_harness.backends import ENGINES
from llem_harness.contract import ExperimentResult
from llem_harness.contract_engine import EngineMetrics
from llem_harness.contract_env import before
from llem_harness.contract_validity import RuleResult, ValidityPolicy
from llem_harness.energy.base import Sample
from llem_harness.engine_load import static_batch
from llem_harness.warmup import unsettled_warning

RULES_VERSION = "2"
ML_ENERGY = "ML.ENERGY benchmark v3, scripts/validate_results.py"
LLEM = "llem-docker (docs/validity.md)"

MIN_WINDOW_S = 10.0
MIN_COVERAGE = 0.75
MAX_GAP_INTERVALS = 5.0
MAX_COUNTER_GAP = 0.02
AVG_POWER_MIN_W, AVG_POWER_MAX_X = 70.0, 1.1
PEAK_POWER_MAX_X = 1.7
TEMP_MIN_C, TEMP_MAX_C, TEMP_MAX_OUTSIDE = 20.0, 95.0, 0.05
MAX_J_PER_TOKEN = 100.0
MAX_CUT_SHARE = 0.30
MAX_BASELINE_X = 0.5
MIN_BATCH_SHARE, KV_FULL = 0.80, 0.85
# NVML clocks-event reasons that mean the GPU was held back by heat or hardware (fail);
# SwPowerCap (0x4) is the power limit at work: recorded, not failed.
SLOWDOWN_BITS = {0x8: "HwSlowdown", 0x20: "SwThermalSlowdown", 0x40: "HwThermalSlowdown",
                 0x80: "HwPowerBrakeSlowdown"}  # fmt: skip
SW_POWER_CAP = 0x4
BASELINE_CUDA_WARNING = "the engine's imports initialised CUDA while the idle baseline"


@dataclass
class Context:
    result: ExperimentResult
    window: list[Sample]  # the samples inside the measured window, every GPU
    interval_s: float
    limit_w: float | None  # the GPUs' common power limit, from NVML
    lengths: list[int] | None
    policy: ValidityPolicy

    @classmethod
    def of(
        cls,
        result: ExperimentResult,
        samples: list[Sample],
        lengths: list[int] | None,
        policy: ValidityPolicy,
    ) -> Context:
        ts = result.timeseries
        lo, hi = ts.window_start_s, ts.window_end_s
        window = [] if lo is None or hi is None else [s for s in samples if lo <= s.t_s <= hi]
        interval = result.measurement.sample_interval_ms / 1000.0
        limit = result.environment.power_limit_w()
        return cls(result, window, interval, limit, lengths, policy)

    @property
    def gpus(self) -> int:
        return len(self.result.environment.gpus)

    def no_gpu(self) -> str | None:
        why = self.result.energy.unavailable_reason or "no GPU was measured"
        return None if self.gpus and self.result.energy.total_j is not None else why


Rule = Callable[[Context], RuleResult]


def verdict(rule: str, ok: bool | None, value: float | None, threshold: str, source: str,
            why: str | None = None) -> RuleResult:  # fmt: skip
    status = "unknown" if ok is None else ("pass" if ok else "fail")
    return RuleResult(rule=rule, status=status, value=value, threshold=threshold,
                      reason=None if ok else why, source=source)  # fmt: skip


def window_length(c: Context) -> RuleResult:
    d, least = c.result.duration_s, c.policy.min_window_s
    why = f"a {d:.1f} s window: too few power samples and counter updates to trust"
    if least > MIN_WINDOW_S:
        why = f"a {d:.1f} s window, under the {c.policy.profile} profile's {least:g} s"
    source = LLEM if least <= MIN_WINDOW_S else f"{LLEM}, the {c.policy.profile} profile"
    return verdict("window_length", d >= least, d, f"≥ {least:g} s", source, why)


def sampling_coverage(c: Context) -> RuleResult:
    threshold = f"≥ {MIN_COVERAGE:.0%} of the expected samples"
    if (why := c.no_gpu()) or not c.window:
        return verdict("sampling_coverage", None, None, threshold, ML_ENERGY, why or "no samples")
    expected = c.result.duration_s / c.interval_s * c.gpus
    share = min(1.0, len(c.window) / expected) if expected > 0 else 0.0
    why = f"{share:.0%} of the expected samples: the sampler fell behind"
    return verdict("sampling_coverage", share >= MIN_COVERAGE, share, threshold, ML_ENERGY, why)


def sampling_gap(c: Context) -> RuleResult:
    threshold = f"≤ {MAX_GAP_INTERVALS:g} × the sample interval"
    if (why := c.no_gpu()) or len(c.window) < 2:
        return verdict("sampling_gap", None, None, threshold, LLEM, why or "under two samples")
    gap = 0.0
    for gpu in {s.gpu_index for s in c.window}:
        times = sorted(s.t_s for s in c.window if s.gpu_index == gpu)
        gap = max([gap, *(b - a for a, b in itertools.pairwise(times))])
    ok = gap <= MAX_GAP_INTERVALS * c.interval_s
    return verdict("sampling_gap", ok, gap, threshold, LLEM, f"a {gap:.2f} s gap in the samples")


def counter_vs_integral(c: Context) -> RuleResult:
    total, integral = c.result.energy.total_j, c.result.timeseries.power_integral_j
    threshold = f"≤ {MAX_COUNTER_GAP:.0%} apart"
    if total is None or integral is None or total <= 0:
        why = c.no_gpu() or "no power integral to compare with"
        return verdict("counter_vs_integral", None, None, threshold, LLEM, why)
    gap = abs(total - integral) / total
    why = f"the energy counter and the sampled power disagree by {gap:.1%}"
    return verdict("counter_vs_integral", gap <= MAX_COUNTER_GAP, gap, threshold, LLEM, why)


def average_power(c: Context) -> RuleResult:
    threshold = f"{AVG_POWER_MIN_W:g} W … {AVG_POWER_MAX_X:g} × the power limit, per GPU"
    total = c.result.energy.total_j
    if (why := c.no_gpu()) or total is None or c.limit_w is None:
        return verdict("average_power", None, None, threshold, ML_ENERGY, why or "no power limit")
    mean = total / c.result.duration_s / c.gpus
    ok = AVG_POWER_MIN_W <= mean <= AVG_POWER_MAX_X * c.limit_w
    why = f"{mean:.0f} W per GPU against a {c.limit_w:.0f} W limit"
    return verdict("average_power", ok, mean, threshold, ML_ENERGY, why)


def peak_power(c: Context) -> RuleResult:
    threshold = f"≤ {PEAK_POWER_MAX_X:g} × the power limit"
    powers = [s.power_w for s in c.window if s.power_w is not None]
    if (why := c.no_gpu()) or not powers or c.limit_w is None:
        return verdict("peak_power", None, None, threshold, ML_ENERGY, why or "no power samples")
    peak = max(powers)
    why = f"a {peak:.0f} W sample against a {c.limit_w:.0f} W limit"
    return verdict(
        "peak_power", peak <= PEAK_POWER_MAX_X * c.limit_w, peak, threshold, ML_ENERGY, why
    )


def temperature(c: Context) -> RuleResult:
    threshold = f"{TEMP_MIN_C:g}–{TEMP_MAX_C:g} °C, under {TEMP_MAX_OUTSIDE:.0%} of samples outside"
    temps = [s.temperature_c for s in c.window if s.temperature_c is not None]
    if (why := c.no_gpu()) or not temps:
        return verdict("temperature", None, None, threshold, ML_ENERGY, why or "no temperatures")
    outside = sum(not TEMP_MIN_C <= t <= TEMP_MAX_C for t in temps) / len(temps)
    why = f"{outside:.0%} of samples outside, {min(temps):.0f}–{max(temps):.0f} °C"
    return verdict("temperature", outside < TEMP_MAX_OUTSIDE, outside, threshold, ML_ENERGY, why)


def throttling(c: Context) -> RuleResult:
    failing = dict(SLOWDOWN_BITS)
    if c.policy.sw_power_cap == "fail":
        failing[SW_POWER_CAP] = "SwPowerCap"
        threshold = "no thermal, hardware or power-cap slowdown (SwPowerCap fails: the policy)"
    else:
        threshold = "no thermal or hardware slowdown (SwPowerCap recorded, not failed)"
    bits = [s.throttle_reasons for s in c.window if s.throttle_reasons is not None]
    if (why := c.no_gpu()) or not bits:
        return verdict("throttling", None, None, threshold, LLEM, why or "no clocks-event reasons")
    seen = 0
    for b in bits:
        seen |= b
    slow = [name for bit, name in failing.items() if seen & bit]
    share = sum(bool(b & sum(failing)) for b in bits) / len(bits)
    why = f"{', '.join(slow)} in {share:.0%} of samples"
    return verdict("throttling", not slow, share, threshold, LLEM, why)


def warmup_settled(c: Context) -> RuleResult:
    w, threshold = c.result.warmup, "throughput settled before the window"
    if c.result.config.warmup_max_runs == 0:
        return verdict("warmup_settled", None, None, threshold, LLEM, "warmup_max_runs is 0")
    why = unsettled_warning(w, c.result.config.warmup_max_runs)
    return verdict("warmup_settled", w.converged, w.final_cv, threshold, LLEM, why)


def requests_completed(c: Context) -> RuleResult:
    s, threshold = c.result.serving, "every request completed"
    if s is None:  # offline: the engine returns every response or the run fails
        return verdict("requests_completed", True, 1.0, threshold, ML_ENERGY)
    share = s.completed / s.requests if s.requests else 0.0
    why = f"{s.failed} of {s.requests} requests failed"
    return verdict("requests_completed", s.failed == 0, share, threshold, ML_ENERGY, why)


def energy_per_token(c: Context) -> RuleResult:
    x, threshold = c.result.energy_per_output_token_j, f"0 < J/token ≤ {MAX_J_PER_TOKEN:g}"
    if x is None:
        return verdict("energy_per_token", None, None, threshold, ML_ENERGY, c.no_gpu())
    return verdict("energy_per_token", 0 < x <= MAX_J_PER_TOKEN, x, threshold, ML_ENERGY,
                   f"{x:g} J/token is implausible")  # fmt: skip


def cut_responses(c: Context) -> RuleResult:
    threshold = f"under {MAX_CUT_SHARE:.0%} of responses cut at max_output_tokens"
    cfg = c.result.config
    if cfg.output_length == "fixed":
        return verdict("cut_responses", True, None, threshold, ML_ENERGY)  # fixed by design
    if not c.lengths:
        return verdict("cut_responses", None, None, threshold, ML_ENERGY, "no response lengths")
    share = sum(n >= cfg.max_output_tokens for n in c.lengths) / len(c.lengths)
    why = f"{share:.0%} of responses reached max_output_tokens: raise it"
    return verdict("cut_responses", share < MAX_CUT_SHARE, share, threshold, ML_ENERGY, why)


def idle_baseline(c: Context) -> RuleResult:
    threshold = f"0 < idle power ≤ {MAX_BASELINE_X:g} × the power limit, per GPU"
    base = c.result.energy.baseline_power_w
    if (why := c.no_gpu()) or base is None or c.limit_w is None:
        return verdict("idle_baseline", None, None, threshold, LLEM, why or "no baseline")
    per_gpu = base / c.gpus
    why = f"{per_gpu:.0f} W per GPU at idle: the GPU was busy before the run"
    return verdict("idle_baseline", 0 < per_gpu <= MAX_BASELINE_X * c.limit_w, per_gpu,
                   threshold, LLEM, why)  # fmt: skip


def _context_open(r: ExperimentResult) -> bool | None:
    """The recorded answer; results from 1.3 to 1.9 carry torch's view only as a warning
    (the baseline measured again after the imports opened a context)."""
    if r.energy.baseline_cuda_context is not None or not before(r.schema_version, (1, 10)):
        return r.energy.baseline_cuda_context
    if before(r.schema_version, (1, 3)):
        return None
    return any(w.startswith(BASELINE_CUDA_WARNING) for w in r.warnings)


def baseline_context(c: Context) -> RuleResult:
    threshold = "no CUDA context open on the GPU while the idle baseline was taken"
    open_ = _context_open(c.result)
    if (why := c.no_gpu()) or open_ is None:
        return verdict("baseline_context", None, None, threshold, LLEM, why or "not checked")
    why = "a CUDA context was open during the idle baseline: it reads above true idle"
    return verdict("baseline_context", not open_, float(open_), threshold, LLEM, why)


def _static_load(r: ExperimentResult) -> EngineMetrics | None:
    """A result from before 1.10 of a static-batch engine: its load was its configuration."""
    spec = ENGINES.get(r.config.backend)
    if spec is None or not spec.static_batch or r.serving is not None:
        return None
    return static_batch(r.config.n_prompts * r.window_repeats, spec.concurrency(r.config))


def batch_reached(c: Context) -> RuleResult:
    threshold = (
        f"mean running batch ≥ {MIN_BATCH_SHARE:.0%} of the engine's limit (or of the "
        f"requests, if fewer), unless the KV cache was over {KV_FULL:.0%} full"
    )
    r, m = c.result, c.result.engine_metrics or _static_load(c.result)
    if r.serving is not None and r.config.serving_options().rate is not None:
        return verdict("batch_reached", True, None, threshold, ML_ENERGY)  # arrivals set it
    if m is None or m.mean_running is None:
        why = "no engine metrics" if m is None else m.unavailable.get("running", "no figure")
        return verdict("batch_reached", None, None, threshold, ML_ENERGY, why)
    if r.serving is not None:  # at an infinite rate: as many as the client lets in flight
        cap = r.config.serving_options().max_concurrency or r.serving.requests
        reachable = min(m.concurrency_limit, r.serving.requests, cap)
    else:
        reachable = min(m.concurrency_limit, r.config.n_prompts * r.window_repeats)
    share = m.mean_running / reachable if reachable else 0.0
    full = (m.kv_cache_usage_max or 0.0) > KV_FULL
    why = (
        f"a mean running batch of {m.mean_running:.1f}, {share:.0%} of {reachable}: the "
        "window's ramp and drain dominate (send more prompts) or the engine could not fill it"
    )
    return verdict("batch_reached", share >= MIN_BATCH_SHARE or full, share, threshold,
                   ML_ENERGY, why)  # fmt: skip


RULES: tuple[Rule, ...] = (
    window_length, sampling_coverage, sampling_gap, counter_vs_integral, average_power,
    peak_power, temperature, throttling, warmup_settled, requests_completed, energy_per_token,
    cut_responses, idle_baseline, baseline_context, batch_reached,
)  # fmt: skip
