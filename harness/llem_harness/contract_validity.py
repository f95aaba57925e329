"""The `validity` block of result.json (schema 1.9): one verdict per rule, and the run's; and
the policy it was judged by (1.10): the thresholds an execution profile sets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llem_harness.contract_files import StrictModel

Status = Literal["pass", "fail", "unknown"]


class ValidityPolicy(StrictModel):
    """The thresholds an execution profile sets (docs/validity.md, "Profiles"). The host puts
    the policy of the study's profile in experiment.json; the harness judges the run by it,
    and the host judges each point by its cycle minimum and CV bound."""

    profile: str = "standard"
    min_window_s: float = Field(10.0, ge=0.0)
    # Repeat the prompts in the measured pass when the last warmup pass was shorter than
    # min_window_s, so that the window reaches it (the result says how many times).
    grow_window: bool = False
    min_cycles: int = Field(1, ge=1)
    max_cycle_cv: float = Field(0.05, gt=0.0)
    # SwPowerCap (the GPU held at its power limit): recorded, or a failure of `throttling`.
    sw_power_cap: Literal["record", "fail"] = "record"


POLICIES: dict[str, ValidityPolicy] = {
    "quick": ValidityPolicy(profile="quick", min_cycles=1),
    "standard": ValidityPolicy(profile="standard", min_cycles=3),
    "publication": ValidityPolicy(
        profile="publication", min_window_s=60.0, grow_window=True, min_cycles=5
    ),
}


class RuleResult(StrictModel):
    """One rule on one run: what was measured, against what, and where the threshold is from."""

    rule: str
    status: Status
    value: float | None = None  # what was measured (null: unknown, with the reason)
    threshold: str  # the bound, as a reader would write it ("≥ 10 s", "≤ 2%")
    reason: str | None = None  # why it failed or is unknown
    source: str  # where the threshold comes from (docs/validity.md)


class Validity(StrictModel):
    """Every rule's verdict. `valid` is false when any rule failed, true when every rule
    passed, null when none failed but some could not be judged (a CPU run: no GPU power)."""

    rules_version: str
    valid: bool | None
    failed: list[str] = Field(default_factory=list)  # the rules that failed, in order
    rules: list[RuleResult] = Field(default_factory=list)
    policy: ValidityPolicy | None = None  # 1.10: the thresholds it was judged by
