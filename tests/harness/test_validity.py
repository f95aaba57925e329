"""Every validity rule on a stored H100 result and synthetic timeseries, crossing its threshold
both ways (docs/validity.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem_harness.contract import ExperimentResult
from llem_harness.contract_validity import POLICIES, ValidityPolicy
from llem_harness.energy.base import Sample
from llem_harness.validity import evaluate

STORED = Path(__file__).parent / "data" / "result-1.7-gpu.json"  # 15.5 s, one H100, 700 W limit
T0, T1 = 24.581445594, 40.08583157199996  # its window on the timeseries clock


def result(**update: Any) -> ExperimentResult:
    base = ExperimentResult.model_validate_json(STORED.read_text())
    base.energy.baseline_cuda_context = False  # 1.10's record (the 1.7 file predates it)
    for path, value in update.items():  # "energy.total_j": 1.0 sets a nested field
        *parents, leaf = path.split(".")
        target: Any = base
        for p in parents:
            target = getattr(target, p)
        setattr(target, leaf, value)
    return base


def samples(
    power: float = 380.0, temp: float = 60.0, bits: int = 0, every_s: float = 0.1,
    until: float = T1,
) -> list[Sample]:  # fmt: skip
    n = int((until - T0) / every_s) + 1
    return [Sample(T0 + i * every_s, 0, power, None, temp, None, None, bits) for i in range(n)]


def rule(res: ExperimentResult, ts: list[Sample], name: str, **kw: Any) -> tuple[str, Any]:
    verdicts = {r.rule: r for r in evaluate(res, ts, **kw).rules}
    return verdicts[name].status, verdicts[name].reason


def test_the_stored_run_passes_every_rule() -> None:
    v = evaluate(result(), samples())
    assert v.valid is True and v.failed == [] and len(v.rules) == 15
    assert all(r.source and r.threshold for r in v.rules)
    assert v.policy == POLICIES["standard"]  # the thresholds it was judged by travel with it


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("window_length", {}, {"duration_s": 9.9}),
        ("counter_vs_integral", {}, {"timeseries.power_integral_j": 5700.0}),
        ("average_power", {}, {"energy.total_j": 15.5 * 800}),
        ("average_power", {}, {"energy.total_j": 15.5 * 60}),
        ("warmup_settled", {}, {"warmup.converged": False}),
        ("energy_per_token", {}, {"energy_per_output_token_j": 150.0}),
        ("idle_baseline", {}, {"energy.baseline_power_w": 400.0}),
        ("baseline_context", {}, {"energy.baseline_cuda_context": True}),
    ],
)
def test_result_rules_cross_their_thresholds(name: str, good: Any, bad: Any) -> None:
    assert rule(result(**good), samples(), name)[0] == "pass"
    status, reason = rule(result(**bad), samples(), name)
    assert status == "fail" and reason


def test_timeseries_rules_cross_their_thresholds() -> None:
    res = result()
    assert rule(res, samples(every_s=0.12), "sampling_coverage")[0] == "pass"  # 83%
    assert rule(res, samples(every_s=0.2), "sampling_coverage")[0] == "fail"  # 50%
    gap = samples(until=30.0) + samples(until=T1)[-40:]  # 5.5 s without a sample
    assert rule(res, gap, "sampling_gap")[0] == "fail"
    assert rule(res, samples(power=1190.0), "peak_power")[0] == "pass"
    assert rule(res, samples(power=1200.0), "peak_power")[0] == "fail"  # 1.7 × 700 W
    assert rule(res, samples(temp=95.0), "temperature")[0] == "pass"
    hot = samples(temp=96.0)
    assert rule(res, hot, "temperature")[0] == "fail"
    assert rule(res, samples(bits=0x4), "throttling")[0] == "pass"  # SwPowerCap: recorded
    status, reason = rule(res, samples(bits=0x40), "throttling")
    assert status == "fail" and "HwThermalSlowdown" in reason


def test_natural_lengths_cut_at_the_cap_fail_past_30_percent() -> None:
    res = result()
    res.config = res.config.model_copy(update={"output_length": "natural"})
    cap = res.config.max_output_tokens
    assert rule(res, samples(), "cut_responses", lengths=[cap] * 2 + [1] * 8)[0] == "pass"
    assert rule(res, samples(), "cut_responses", lengths=[cap] * 3 + [1] * 7)[0] == "fail"
    assert rule(res, samples(), "cut_responses")[0] == "unknown"


def test_without_a_gpu_the_power_rules_are_unknown_and_valid_is_null() -> None:
    res = result(**{"energy.total_j": None, "energy.unavailable_reason": "no NVIDIA GPU visible"})
    res.energy_per_output_token_j = None
    v = evaluate(res, [])
    unknown = {r.rule: r.reason for r in v.rules if r.status == "unknown"}
    assert v.valid is None and v.failed == []
    assert unknown["average_power"] == "no NVIDIA GPU visible" and "peak_power" in unknown


def test_a_serving_run_with_a_failed_request_fails() -> None:
    from llem_harness.contract import Serving, ServingWindow

    def served(failed: int) -> ExperimentResult:
        res = result()
        res.serving = Serving(
            request_rate="inf", arrival="poisson", requests=20, completed=20 - failed,
            failed=failed, duration_s=15.5, steady=ServingWindow(), whole=ServingWindow(),
        )  # fmt: skip
        return res

    assert rule(served(0), samples(), "requests_completed")[0] == "pass"
    status, reason = rule(served(1), samples(), "requests_completed")
    assert status == "fail" and reason == "1 of 20 requests failed"


def test_the_publication_profile_asks_for_60_s_windows() -> None:
    publication = POLICIES["publication"]
    res = result()  # a 15.5 s window
    assert rule(res, samples(), "window_length")[0] == "pass"
    status, reason = rule(res, samples(), "window_length", policy=publication)
    assert status == "fail" and "publication profile's 60 s" in reason
    assert rule(result(duration_s=60.0), samples(), "window_length", policy=publication)[0] == (
        "pass"
    )


def test_the_policy_sets_whether_sw_power_cap_fails() -> None:
    strict = ValidityPolicy(profile="lab", sw_power_cap="fail")
    assert rule(result(), samples(bits=0x4), "throttling")[0] == "pass"
    status, reason = rule(result(), samples(bits=0x4), "throttling", policy=strict)
    assert status == "fail" and "SwPowerCap" in reason
    assert rule(result(), samples(), "throttling", policy=strict)[0] == "pass"


def test_a_stored_result_before_1_10_reads_its_baseline_warning() -> None:
    """From 1.3 to 1.9 an open context showed only as the baseline's warning."""
    res = result(**{"energy.baseline_cuda_context": None})
    assert rule(res, samples(), "baseline_context")[0] == "pass"
    res.warnings.append(
        "the engine's imports initialised CUDA while the idle baseline was measured, so it "
        "was measured again after them: the baseline includes this process's CUDA context"
    )
    assert rule(res, samples(), "baseline_context")[0] == "fail"
    res.schema_version = "1.10"  # a 1.10 result records it: null is not known
    assert rule(res, samples(), "baseline_context")[0] == "unknown"


def test_the_engine_must_reach_its_batch_unless_its_cache_is_full() -> None:
    from llem_harness.contract_engine import EngineMetrics

    def load(mean: float, kv_max: float | None = None) -> ExperimentResult:
        res = result()
        res.engine_metrics = EngineMetrics(
            source="test", concurrency_limit=256, mean_running=mean, kv_cache_usage_max=kv_max
        )
        return res

    assert rule(load(205.0), samples(), "batch_reached")[0] == "pass"  # 80% of 256
    status, reason = rule(load(200.0), samples(), "batch_reached")
    assert status == "fail" and "78% of 256" in reason
    assert rule(load(200.0, kv_max=0.9), samples(), "batch_reached")[0] == "pass"  # cache-bound
    few = load(3.5)
    few.config = few.config.model_copy(update={"n_prompts": 4})  # fewer requests than the cap
    assert rule(few, samples(), "batch_reached")[0] == "pass"
    # A static batch (pytorch) before 1.10: the configuration says it (1024 prompts / 32).
    assert rule(result(), samples(), "batch_reached")[0] == "pass"
    partial = result()
    partial.config = partial.config.model_copy(update={"n_prompts": 40})  # batches of 32 and 8
    assert rule(partial, samples(), "batch_reached")[0] == "fail"  # a mean of 20 of 32
