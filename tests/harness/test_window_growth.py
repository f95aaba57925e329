"""The publication profile grows the measured window from the last warmup pass
(llem_harness.window.grown_prompts)."""

from __future__ import annotations

from llem_harness.contract import Warmup
from llem_harness.contract_validity import POLICIES
from llem_harness.window import grown_prompts

PROMPTS = [[1, 2], [3, 4], [5, 6]]


def warmup(*pass_s: float) -> Warmup:
    return Warmup(
        runs=len(pass_s), converged=True, final_cv=0.01, threshold=0.05,
        throughputs=[100.0] * len(pass_s), pass_seconds=list(pass_s),
    )  # fmt: skip


def test_a_short_pass_is_repeated_until_the_window_reaches_60_s() -> None:
    prompts, k, note = grown_prompts(PROMPTS, warmup(30.0, 14.0), POLICIES["publication"])
    assert k == 5 and prompts == PROMPTS * 5  # 5 × 14 s = 70 s ≥ 60 s; 4 × 14 s is not
    assert note is not None and "3 prompts 5 times (15 requests)" in note and "14.0 s" in note


def test_a_long_enough_pass_or_another_profile_is_left_alone() -> None:
    assert grown_prompts(PROMPTS, warmup(61.0), POLICIES["publication"]) == (PROMPTS, 1, None)
    assert grown_prompts(PROMPTS, warmup(2.0), POLICIES["standard"]) == (PROMPTS, 1, None)
    assert grown_prompts(PROMPTS, warmup(2.0), None) == (PROMPTS, 1, None)  # serving


def test_without_a_warmup_pass_nothing_is_known_so_nothing_grows() -> None:
    assert grown_prompts(PROMPTS, warmup(), POLICIES["publication"]) == (PROMPTS, 1, None)
