"""Execution profiles and how a study's execution is settled: the one place the CLI
(`--profile`, `--cycles`, `--order`, `--no-gaps`) and the library API (`run_study`) share.
A profile also sets the validity thresholds its runs and points are judged by (`policy_for`;
the thresholds themselves live with the rules, in the harness: contract_validity.POLICIES).

Precedence, lowest first: the base (the CLI's `standard` profile; the library's
ExecutionConfig defaults, one cycle) < the study's `execution:` block < the profile asked
for < an explicit cycle count or order. A profile may also turn the thermal gaps off.
"""

from __future__ import annotations

from typing import Any

from llem_docker.errors import ConfigError
from llem_docker.study.model import ExecutionConfig, StudyConfig
from llem_harness.host_api import POLICIES, ValidityPolicy

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"n_cycles": 1, "cycle_order": "sequential", "no_gaps": True},
    "standard": {"n_cycles": 3, "cycle_order": "interleaved", "no_gaps": False},
    "publication": {"n_cycles": 5, "cycle_order": "shuffled", "no_gaps": False},
}
CLI_BASE = "standard"


def _execution_part(profile: str) -> dict[str, Any]:
    return {k: v for k, v in PROFILES[profile].items() if k != "no_gaps"}


def effective_execution(
    study: StudyConfig,
    profile: str | None = None,
    cycles: int | None = None,
    order: str | None = None,
    *,
    base: str | None = CLI_BASE,
) -> ExecutionConfig:
    """The execution a run of `study` uses (precedence in the module docstring). `base` is
    the profile under everything (None: the library's ExecutionConfig defaults)."""
    if profile is not None and profile not in PROFILES:
        raise ConfigError(
            f"unknown execution profile `{profile}`",
            source="profile",
            fix=f"use one of {', '.join(PROFILES)}",
        )
    values: dict[str, Any] = {} if base is None else _execution_part(base)
    if study.execution is not None:
        values.update({k: getattr(study.execution, k) for k in study.execution.model_fields_set})
    if profile is not None:
        values.update(_execution_part(profile))
    if cycles is not None:
        values["n_cycles"] = cycles
    if order is not None:
        values["cycle_order"] = order
    return ExecutionConfig.model_validate(values)


def policy_for(profile: str | None, base: str | None = CLI_BASE) -> ValidityPolicy:
    """The validity thresholds of the profile asked for, else of the base; the library API
    (no profile, no base: one cycle by default) gets the standard profile's thresholds with no
    cycle minimum (docs/validity.md, "Profiles")."""
    if profile or base:
        return POLICIES[profile or base or "standard"]
    return POLICIES["standard"].model_copy(update={"profile": "library", "min_cycles": 1})


def gaps_off(profile: str | None, no_gaps: bool) -> bool:
    """Whether the thermal gaps are skipped: asked for, or part of the profile."""
    return no_gaps or bool(profile and PROFILES.get(profile, {}).get("no_gaps"))
