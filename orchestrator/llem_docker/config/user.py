"""User config: machine-local settings (HOW to run). Missing file is fine.

Location: $LLEM_CONFIG, else $XDG_CONFIG_HOME/llenergymeasure/config.yaml,
else ~/.config/llenergymeasure/config.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llem_docker.config.secrets import check_no_secrets
from llem_docker.config.yamlsrc import format_key, load_yaml
from llem_docker.errors import ConfigError
from llem_harness.host_api import BACKENDS, MeasurementSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputSettings(_Strict):
    """Where results go and the caches runs share. An unset cache follows the conventions of
    the tools that fill it (settings.py resolves them, and `config` shows which rule won)."""

    results_dir: str = "./results"
    model_cache_dir: str | None = Field(
        None,
        description="the Hugging Face home (HF_HOME in runs); default: $HF_HOME, else "
        "$XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface",
    )
    hub_cache_dir: str | None = Field(
        None,
        description="the Hugging Face hub cache, when it is not <model_cache_dir>/hub; "
        "default: $HF_HUB_CACHE",
    )
    # Engine build and compile caches, mounted into containers (reused across runs).
    engine_cache_dir: str | None = Field(
        None,
        description="default: $XDG_CACHE_HOME/llem/engines, else ~/.cache/llem/engines",
    )


class ExecutionSettings(_Strict):
    config_gap_seconds: float = Field(60.0, ge=0.0)
    cycle_gap_seconds: float = Field(300.0, ge=0.0)
    experiment_timeout_seconds: float = Field(3600.0, gt=0.0)
    max_consecutive_failures: int = Field(3, ge=1)
    max_runs: int = Field(
        100_000, ge=1, description="refuse studies that expand to more runs (--max-runs)"
    )


class DockerSettings(_Strict):
    gpus: str | list[int] = Field("all", description="all | none | list of GPU indices")
    shm_size: str | None = Field("16g", description="None means ipc=host")
    memory: str | None = Field(None, description="container memory limit, e.g. 64g; no swap")
    hf_hub_offline: bool = False
    network: str = Field(
        "auto",
        min_length=1,
        description="auto (none, loopback only, for a run that cannot need the hub: "
        "hf_hub_offline, or dummy weights of a shipped config; else the engine's default "
        "bridge) | none | bridge | host | a network's name",
    )


class ApptainerSettings(_Strict):
    gpus: str | list[int] = Field(
        "all", description="all (--nv; the host's CUDA_VISIBLE_DEVICES, e.g. SLURM's) | none | ids"
    )
    containall: bool = Field(False, description="--containall instead of --cleanenv")
    binds: list[str] = Field(default_factory=list, description="extra --bind specs")
    hf_hub_offline: bool = False


class SlurmSettings(_Strict):
    partition: str | None = None
    account: str | None = None
    time: str | None = Field(None, description="per task; default: from the experiment timeout")
    gpus_per_run: int = Field(1, ge=0)
    max_parallel: int = Field(1, ge=1, description="array tasks that may run at once")
    exclusive: bool = Field(True, description="a whole node per task: no neighbours")
    python: str | None = Field(None, description="the orchestrator's Python on compute nodes")
    setup: list[str] = Field(default_factory=list, description="shell lines run first")
    sbatch_args: list[str] = Field(default_factory=list, description="extra #SBATCH options")


class UserConfig(_Strict):
    runners: dict[str, str] = Field(default_factory=dict, description="backend -> runner")
    images: dict[str, str] = Field(default_factory=dict, description="backend -> image")
    output: OutputSettings = OutputSettings()
    measurement: MeasurementSettings = MeasurementSettings()
    execution: ExecutionSettings = ExecutionSettings()
    docker: DockerSettings = DockerSettings()
    apptainer: ApptainerSettings = ApptainerSettings()
    slurm: SlurmSettings = SlurmSettings()

    @field_validator("runners", "images")
    @classmethod
    def _engines(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(BACKENDS))
        if unknown:
            raise ValueError(
                f"unknown backend {', '.join(f'`{u}`' for u in unknown)}; "
                f"use one of {', '.join(BACKENDS)}"
            )
        return value


def user_config_path(env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """Where the user config lives, and which rule chose it."""
    env = os.environ if env is None else env
    if env.get("LLEM_CONFIG"):
        return Path(env["LLEM_CONFIG"]).expanduser(), "env LLEM_CONFIG"
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "llenergymeasure" / "config.yaml", "XDG_CONFIG_HOME"
    return Path("~/.config/llenergymeasure/config.yaml").expanduser(), "default location"


def load_user_config(path: Path, *, required: bool = False) -> tuple[UserConfig, set[str]]:
    """The config and the dotted keys the file actually set (for `llem-docker config`)."""
    if not path.exists():
        if required:
            raise ConfigError("file not found", source=path, fix="create it or unset LLEM_CONFIG")
        return UserConfig(), set()
    doc = load_yaml(path)
    check_no_secrets(doc)
    data = doc.data or {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the top level must be a mapping",
            source=path,
            fix="see the user config example in the README",
        )
    try:
        config = UserConfig.model_validate(data)
    except ValidationError as exc:
        from llem_docker.errors import describe_error

        err = exc.errors()[0]
        key = tuple(err["loc"])
        message, fix = describe_error(err)
        if err["type"] == "extra_forbidden" and len(key) == 1:
            fix = f"valid sections are {', '.join(UserConfig.model_fields)}"
        raise ConfigError(
            message, source=path, key=format_key(key), line=doc.line(key), fix=fix
        ) from None
    set_keys: set[str] = set()
    for k, v in data.items():
        set_keys |= {f"{k}.{sub}" for sub in v} if isinstance(v, dict) else {str(k)}
    return config, set_keys
