"""Resolved settings: user config + env overrides + CLI flags, each value with its source.

Runner precedence per backend: LLEM_RUNNER_<BACKEND> > user config `runners.<backend>` >
`--runner` (all backends) > default `docker`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llem_docker.config.user import (
    ApptainerSettings,
    DockerSettings,
    ExecutionSettings,
    OutputSettings,
    SlurmSettings,
    UserConfig,
    load_user_config,
    user_config_path,
)
from llem_docker.errors import ConfigError
from llem_harness.host_api import BACKENDS, MeasurementSettings, __version__, engine

RunnerKind = Literal["local", "docker", "apptainer", "singularity"]
IMAGE_REPO = "llenergymeasure"


def default_image(backend: str) -> str:
    """The pinned image the orchestrator expects (built by `make images`)."""
    return f"{IMAGE_REPO}/{backend}:{__version__}"


@dataclass(frozen=True)
class RunnerSpec:
    kind: RunnerKind
    target: str | None  # docker image or .sif path
    source: str  # where the choice came from
    target_source: str | None = None
    backend: str = ""

    @property
    def label(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


def parse_runner(value: str, *, origin: str, fix_where: str) -> tuple[RunnerKind, str | None]:
    """Parse `local`, `docker`, `docker:<image>`, `apptainer:<sif>`, `singularity:<sif>`."""
    value = value.strip()
    kind, sep, target = value.partition(":")
    fix = (
        f"set {fix_where} to one of: local, docker, docker:<image>, apptainer:<sif>, "
        "singularity:<sif>"
    )
    if kind == "local" and not sep:
        return "local", None
    if kind == "docker":
        if sep and not target:
            raise ConfigError("`docker:` needs an image after the colon", source=origin, fix=fix)
        return "docker", target or None
    if kind in ("apptainer", "singularity"):
        if not target:
            raise ConfigError(
                f"`{kind}` needs the path of a .sif image (`{kind}:<sif>`)", source=origin, fix=fix
            )
        return kind, target  # type: ignore[return-value]
    raise ConfigError(f"unknown runner `{value}`", source=origin, fix=fix)


def engine_installed(backend: str) -> bool:
    """Whether this Python environment has the backend's engine: several backends may share
    the `local` runner only where one environment holds them all. The packages are the
    engine's (its EngineSpec's `packages`), looked up, never imported."""
    import importlib.util

    return all(importlib.util.find_spec(p) is not None for p in engine(backend).packages)


@dataclass
class Settings:
    """Everything the orchestrator needs to know about this machine, with sources."""

    user: UserConfig
    config_path: Path
    config_path_rule: str
    config_keys: set[str]
    env: Mapping[str, str]
    cli_runner: str | None = None
    results_dir_flag: str | None = None
    no_gaps: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        cli_runner: str | None = None,
        results_dir: str | None = None,
        no_gaps: bool = False,
        gpus: str | None = None,
    ) -> Settings:
        env = dict(os.environ if env is None else env)
        path, rule = user_config_path(env)
        user, keys = load_user_config(path, required=rule == "env LLEM_CONFIG")
        s = cls(user, path, rule, keys, env, cli_runner, results_dir, no_gaps)
        if cli_runner is not None:
            parse_runner(cli_runner, origin="--runner", fix_where="--runner")
        if gpus is not None:
            from llem_docker.execution.runners.container import parse_gpus

            parse_gpus(gpus, source="--gpus")
            for key in ("docker.gpus", "apptainer.gpus"):
                s.overrides[key], s.sources[key] = gpus, "--gpus"
        s._cache_defaults()
        s._env_float("LLEM_CARBON_INTENSITY", "measurement.carbon_intensity_gco2_kwh", 0.0, None)
        s._env_float("LLEM_DATACENTER_PUE", "measurement.datacenter_pue", 1.0, 5.0)
        return s

    def _cache_defaults(self) -> None:
        """Caches the user config leaves unset follow the Hugging Face conventions (HF_HOME,
        HF_HUB_CACHE) and XDG's (XDG_CACHE_HOME), as the libraries inside the runs do."""
        env = self.env
        xdg = env.get("XDG_CACHE_HOME") or None
        rules: dict[str, list[tuple[str | None, str]]] = {
            "output.model_cache_dir": [
                (env.get("HF_HOME"), "env HF_HOME"),
                (xdg and f"{xdg}/huggingface", "env XDG_CACHE_HOME (+ /huggingface)"),
                ("~/.cache/huggingface", "default (Hugging Face's)"),
            ],
            "output.hub_cache_dir": [(env.get("HF_HUB_CACHE"), "env HF_HUB_CACHE")],
            "output.engine_cache_dir": [
                (xdg and f"{xdg}/llem/engines", "env XDG_CACHE_HOME (+ /llem/engines)"),
                ("~/.cache/llem/engines", "default"),
            ],
        }
        for key, candidates in rules.items():
            if key in self.config_keys:
                continue
            for value, source in candidates:
                if value:
                    self.overrides[key], self.sources[key] = value, source
                    break

    def _env_float(self, var: str, key: str, lo: float, hi: float | None) -> None:
        raw = self.env.get(var)
        if raw is None or raw == "":
            return
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(
                f"`{raw}` is not a number",
                source=f"env {var}",
                fix=f"export {var}=<number> or unset it",
            ) from None
        if value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
            raise ConfigError(
                f"{value} is out of range", source=f"env {var}", fix=f"use a value {rng}"
            )
        self.overrides[key] = value
        self.sources[key] = f"env {var}"

    # -- typed, resolved values -----------------------------------------------------------
    # Each section is the user config's frozen model with the overrides applied (flags, env,
    # the cache conventions); `source(key)` says where each value came from.
    def _section(self, name: str) -> Any:
        base = getattr(self.user, name)
        update = {
            k.split(".", 1)[1]: v for k, v in self.overrides.items() if k.startswith(name + ".")
        }
        if name == "output" and self.results_dir_flag:
            update["results_dir"] = self.results_dir_flag
        if name == "execution" and self.no_gaps:
            update |= {"config_gap_seconds": 0.0, "cycle_gap_seconds": 0.0}
        return type(base).model_validate(base.model_dump() | update) if update else base

    @property
    def output(self) -> OutputSettings:
        out: OutputSettings = self._section("output")
        return out

    @property
    def measurement(self) -> MeasurementSettings:
        out: MeasurementSettings = self._section("measurement")
        return out

    @property
    def execution(self) -> ExecutionSettings:
        out: ExecutionSettings = self._section("execution")
        return out

    @property
    def docker(self) -> DockerSettings:
        out: DockerSettings = self._section("docker")
        return out

    @property
    def apptainer(self) -> ApptainerSettings:
        out: ApptainerSettings = self._section("apptainer")
        return out

    @property
    def slurm(self) -> SlurmSettings:
        out: SlurmSettings = self._section("slurm")
        return out

    def shown(self, key: str) -> Any:
        """A resolved value by its dotted key, for `llem-docker config` (code reads the typed
        sections instead)."""
        section, name = key.split(".", 1)
        return getattr(getattr(self, section), name)

    def source(self, key: str) -> str:
        if key in self.sources:
            return self.sources[key]
        if key == "output.results_dir" and self.results_dir_flag:
            return "--results-dir"
        if key in ("execution.config_gap_seconds", "execution.cycle_gap_seconds") and self.no_gaps:
            return "--no-gaps"
        return f"user config ({self.config_path})" if key in self.config_keys else "default"

    def scalar_keys(self) -> list[str]:
        keys = []
        for section in ("output", "measurement", "execution", "docker", "apptainer", "slurm"):
            model = getattr(self.user, section)
            keys += [f"{section}.{name}" for name in type(model).model_fields]
        return keys

    # -- runners --------------------------------------------------------------------------
    def runner(self, backend: str) -> RunnerSpec:
        var = f"LLEM_RUNNER_{backend.upper()}"
        if self.env.get(var):
            raw, src, where = self.env[var], f"env {var}", f"env {var}"
        elif backend in self.user.runners:
            raw, src = self.user.runners[backend], f"user config ({self.config_path})"
            where = f"`runners.{backend}` in {self.config_path}"
        elif self.cli_runner:
            raw, src, where = self.cli_runner, "--runner", "--runner"
        else:
            raw, src, where = "docker", "default", "LLEM_RUNNER_" + backend.upper()
        kind, target = parse_runner(raw, origin=src, fix_where=where)
        if kind in ("apptainer", "singularity") and target:  # recorded, and used elsewhere
            target = str(Path(target).expanduser().absolute())
        target_src = src if target else None
        if kind == "docker" and target is None:
            if backend in self.user.images:
                target = self.user.images[backend]
                target_src = f"user config images.{backend}"
            else:
                target, target_src = default_image(backend), "pinned default"
        return RunnerSpec(kind, target, src, target_src, backend)

    def runners(self, backends: tuple[str, ...] | list[str] = BACKENDS) -> dict[str, RunnerSpec]:
        out = {b: self.runner(b) for b in backends}
        local = [b for b, r in out.items() if r.kind == "local"]
        missing = [b for b in local if not engine_installed(b)]
        if len(local) > 1 and missing:
            detail = "; ".join(f"{b} from {out[b].source}" for b in local)
            raise ConfigError(
                f"backends {', '.join(local)} all resolve to the `local` runner ({detail}), "
                f"but this Python environment lacks the engine of {', '.join(missing)}, and "
                "engines rarely share one environment",
                source="runner resolution",
                fix=f"keep `local` for one backend and give the others a container, e.g. "
                f"`export LLEM_RUNNER_{missing[-1].upper()}=docker`, or split the study by "
                "backend",
            )
        return out
