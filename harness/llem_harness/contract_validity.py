"""The `validity` block of result.json (schema 1.9): one verdict per rule, and the run's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llem_harness.contract_files import StrictModel

Status = Literal["pass", "fail", "unknown"]


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
