"""StudyConfig: the portable description of WHAT a study measures.

A study file holds base ExperimentConfig fields, an optional `sweep:` (universal keys and
backend-scoped dotted keys), optional explicit `experiments:`, and an optional `execution:`
block (the statistical protocol). It never names a runner, an image, a GPU or a secret.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llem_harness.host_api import BACKENDS, ENGINES, SLO, ExperimentConfig, ServingOptions

CycleOrder = Literal["sequential", "interleaved", "shuffled"]
STUDY_KEYS = ("name", "sweep", "experiments", "execution")
EXPERIMENT_FIELDS: frozenset[str] = frozenset(ExperimentConfig.model_fields)
NESTED_SECTIONS: frozenset[str] = frozenset({"decoding", "serving", *BACKENDS})
# Keys people reach for that belong somewhere else; named in the error's fix.
MISPLACED = {
    "runner": "runners belong in the user config (`runners:`) or LLEM_RUNNER_<BACKEND>",
    "runners": "runners belong in the user config (`runners:`) or LLEM_RUNNER_<BACKEND>",
    "image": "images belong in the user config (`images:`) or LLEM_RUNNER_<BACKEND>=docker:<image>",
    "images": "images belong in the user config (`images:`)",
    "gpus": "GPU selection belongs in the user config (`docker: {gpus: ...}`)",
    "gpu": "GPU selection belongs in the user config (`docker: {gpus: ...}`)",
    "n_cycles": "put it under `execution:` (execution: {n_cycles: 3})",
    "cycle_order": "put it under `execution:` (execution: {cycle_order: interleaved})",
}


class ExecutionConfig(BaseModel):
    """Statistical protocol. Excluded from study_design_hash.

    The library default is one cycle; the CLI applies its `standard` profile (3 cycles,
    interleaved) to fields the study file leaves unset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_cycles: int = Field(1, ge=1, le=10_000)
    cycle_order: CycleOrder = "interleaved"
    seed: int | None = Field(
        None, ge=0, description="shuffle seed; derived from study_design_hash when unset"
    )


@dataclass(frozen=True)
class Axis:
    """One sweep axis. `backend` is None for universal axes."""

    key: str  # as written in the file, e.g. "vllm.max_num_seqs"
    backend: str | None
    path: tuple[str, ...]  # where the value goes in an ExperimentConfig dict
    values: tuple[Any, ...]


class StudyConfig(BaseModel):
    """A validated study, before expansion."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    backends: tuple[str, ...] = ()
    axes: tuple[Axis, ...] = ()
    experiments: tuple[dict[str, Any], ...] = ()
    execution: ExecutionConfig | None = None
    source: str | None = None

    @property
    def has_grid(self) -> bool:
        """Whether the top level (plus the sweep) is itself a set of experiments. Without a
        `sweep:`, listed `experiments:` are the study and the top level only gives the
        defaults they share; a file with neither is a study of one."""
        return bool(self.axes) or not self.experiments

    def path_of(self, name: str) -> Path:
        """A file the study names (a dataset, a trace, a GGUF model): as given when absolute,
        else relative to the study file's folder (the working directory without a file)."""
        path = Path(name).expanduser()
        if path.is_absolute():
            return path
        return (Path(self.source).resolve().parent if self.source else Path.cwd()) / path

    def grid_size(self, backend: str) -> int:
        """Points of the grid for one backend: the product of its axes' lengths."""
        return math.prod(len(a.values) for a in self.axes_for(backend)) if self.has_grid else 0

    def axes_for(self, backend: str) -> list[Axis]:
        return [a for a in self.axes if a.backend in (None, backend)]

    def base_for(self, backend: str) -> dict[str, Any]:
        """Base fields for one backend: other backends' sections are dropped."""
        data = {k: _copy(v) for k, v in self.base.items() if k not in BACKENDS or k == backend}
        data["backend"] = backend
        return data


def parse_axis_key(key: str) -> tuple[str | None, tuple[str, ...]] | str:
    """Map a sweep key to (backend, path), or return an error message."""
    parts = key.split(".")
    if any(not p for p in parts):
        return "malformed key (empty part between dots)"
    head = parts[0]
    if len(parts) == 1:
        if head == "backend":
            return "the backend axis is the top-level `backend:` list, not a sweep key"
        if head in NESTED_SECTIONS:
            return f"`{head}` is a section; sweep one of its fields with a dotted key"
        if head not in EXPERIMENT_FIELDS:
            return "unknown field"
        return None, (head,)
    if head in BACKENDS:
        rest = parts[1:]
        if len(rest) == 1 and rest[0] in ENGINES[head].options.model_fields:
            return head, (head, rest[0])
        if len(rest) == 2 and rest[0] == "engine_args":  # any key: the harness checks it
            return head, (head, "engine_args", rest[1])
        if rest[0] in EXPERIMENT_FIELDS and rest[0] not in NESTED_SECTIONS and len(rest) == 1:
            return head, (rest[0],)
        if rest[0] == "decoding" and len(rest) == 2:
            return head, ("decoding", rest[1])
        return f"`{'.'.join(rest)}` is not a `{head}` option nor an experiment field"
    if head == "decoding" and len(parts) == 2:
        return None, ("decoding", parts[1])
    if head == "serving":
        return _serving_key(parts[1:])
    return f"unknown backend `{head}` in a scoped key (backends: {', '.join(BACKENDS)})"


def _serving_key(rest: list[str]) -> tuple[None, tuple[str, ...]] | str:
    """`serving.<field>` or `serving.slo.<objective>`."""
    if len(rest) == 1 and rest[0] in ServingOptions.model_fields and rest[0] != "slo":
        return None, ("serving", rest[0])
    if len(rest) == 2 and rest[0] == "slo" and rest[1] in SLO.model_fields:
        return None, ("serving", "slo", rest[1])
    fields = ", ".join(f for f in ServingOptions.model_fields if f != "slo")
    return f"`{'.'.join(rest)}` is not a serving option ({fields}, slo.ttft_ms, slo.tpot_ms)"


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        node = data.get(part)
        if not isinstance(node, dict):
            node = {}
        data[part] = node = dict(node)
        data = node
    data[path[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {k: _copy(v) for k, v in base.items()}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = _copy(v)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
