"""Pass/fail rules for one run (docs/validity.md): `evaluate(result, samples)`.

Each rule reads the finished result and the power timeseries of its window, and says `pass`,
`fail` or `unknown` (with the reason: no NVML, no timeseries, not a serving run) beside the
measured value, the threshold and where the threshold comes from. The rules and their numbers
are versioned together (`RULES_VERSION`).
"""

from __future__ import annotations

from llem_harness.contract import ExperimentResult
from llem_harness.contract_validity import POLICIES, RuleResult, Validity, ValidityPolicy
from llem_harness.energy.base import Sample
from llem_harness.validity.rules import RULES, RULES_VERSION, Context


def evaluate(
    result: ExperimentResult,
    samples: list[Sample],
    lengths: list[int] | None = None,
    policy: ValidityPolicy | None = None,
) -> Validity:
    """Every rule on `result`; `samples` is the run's whole timeseries (the rules take the
    window's slice), `lengths` the measured responses' output tokens where known, `policy`
    the profile's thresholds (default: the standard profile's)."""
    policy = policy or POLICIES["standard"]
    ctx = Context.of(result, samples, lengths, policy)
    verdicts = [rule(ctx) for rule in RULES]
    failed = [v.rule for v in verdicts if v.status == "fail"]
    unknown = any(v.status == "unknown" for v in verdicts)
    valid = False if failed else (None if unknown else True)
    return Validity(
        rules_version=RULES_VERSION, valid=valid, failed=failed, rules=verdicts, policy=policy
    )


__all__ = ["POLICIES", "RULES_VERSION", "RuleResult", "Validity", "ValidityPolicy", "evaluate"]
