"""The container a run gets, said once for every runtime: a runtime-neutral request that the
Docker runner turns into the Docker SDK's arguments (docker_engine.container_spec) and the
Apptainer runner into an `apptainer exec` command line (apptainer.apptainer_command), as
ML.ENERGY's container runtime abstraction does.

What differs between the runtimes stays with them: Docker renumbers the GPUs it passes
(CUDA_VISIBLE_DEVICES=0..n-1 inside) and needs HOME; Apptainer keeps the host's GPU indices
and takes secrets from APPTAINERENV_<NAME> variables of its own process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llem_docker.errors import ConfigError
from llem_harness.host_api import HOST_RAPL_ENV

RUN_MOUNT = "/llem/run"
HF_MOUNT = "/llem/hf-cache"
HUB_MOUNT = "/llem/hf-hub"  # only when the host's hub cache lies outside the HF home
ENGINE_MOUNT = "/llem/engine-cache"
HARNESS_COMMAND = ("llem-harness", "run", RUN_MOUNT)
# Passed through from the host environment by name when set; never written anywhere.
PASSTHROUGH_ENV = (
    "HF_TOKEN",
    "HF_ENDPOINT",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
)


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # in the container


@dataclass(frozen=True)
class ContainerRequest:
    """One run's container, before any runtime has a say."""

    image: str
    gpus: list[str] | None  # None = all, [] = none, else the host's device ids
    env: dict[str, str]  # the container's environment; no secret
    secrets: dict[str, str]  # PASSTHROUGH_ENV values that are set: by name, never on a line
    mounts: tuple[Mount, ...]
    command: tuple[str, ...] = HARNESS_COMMAND
    workdir: str = RUN_MOUNT
    labels: dict[str, str] = field(default_factory=dict)


class RunOptions(Protocol):
    """What both runtimes' options hold that the request needs (ContainerOptions,
    ApptainerOptions)."""

    @property
    def gpus(self) -> list[str] | None: ...
    @property
    def hf_cache_dir(self) -> Path: ...
    @property
    def engine_cache_dir(self) -> Path: ...
    @property
    def hub_cache_dir(self) -> Path | None: ...
    @property
    def hf_hub_offline(self) -> bool: ...
    @property
    def host_rapl(self) -> bool: ...


def container_request(
    opts: RunOptions,
    image: str,
    run_dir: Path,
    *,
    host_env: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> ContainerRequest:
    """The request for the run in `run_dir`: the contract's mounts (the run folder, the HF
    home, the engine cache, the hub cache where it lies outside the HF home) and the
    environment the harness runs with."""
    gpus, hub_cache_dir = opts.gpus, opts.hub_cache_dir
    # No bytecode written into a run's container: it would go with the container, and the
    # engine would spend each run's removal deleting it (images/install-harness.py).
    env = {
        "HF_HOME": HF_MOUNT,
        "LLEM_ENGINE_CACHE": ENGINE_MOUNT,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if opts.hf_hub_offline:
        env["HF_HUB_OFFLINE"] = "1"
    if opts.host_rapl:  # so that a run seeing no powercap tree can say "not mounted"
        env[HOST_RAPL_ENV] = "1"
    mounts = [
        Mount(run_dir.resolve(), RUN_MOUNT),
        Mount(opts.hf_cache_dir, HF_MOUNT),
        Mount(opts.engine_cache_dir, ENGINE_MOUNT),
    ]
    if hub_cache_dir is not None:
        env["HF_HUB_CACHE"] = HUB_MOUNT
        mounts.append(Mount(hub_cache_dir, HUB_MOUNT))
    return ContainerRequest(
        image=image,
        gpus=None if gpus is None else list(gpus),
        env=env,
        secrets={n: host_env[n] for n in PASSTHROUGH_ENV if host_env.get(n)},
        mounts=tuple(mounts),
        labels=dict(labels or {}),
    )


def parse_gpus(
    value: str | list[int], *, source: str, key: str = "docker.gpus"
) -> list[str] | None:
    """`docker.gpus` (or `apptainer.gpus`) → None (all GPUs), [] (none) or the device ids."""
    if isinstance(value, list):
        return [str(v) for v in value]
    text = value.strip().lower()
    if text == "all":
        return None
    if text in ("none", ""):
        return []
    ids = [part.strip() for part in text.split(",")]
    if all(re.fullmatch(r"\d+|gpu-[0-9a-f-]+", i) for i in ids):
        return ids
    raise ConfigError(
        f"`{value}` is not a GPU selection",
        source=source,
        key=key,
        fix="use all, none, a comma-separated list of GPU indices (0,1) or a list [0, 1]",
    )


def cache_dirs(settings: Any) -> tuple[Path, Path, Path | None]:
    """The HF home, the engine cache and the HF hub cache (None: under the HF home), made to
    exist so that no engine creates them owned by root."""
    out = settings.output
    paths = [
        None if v is None else Path(v).expanduser()
        for v in (out.model_cache_dir, out.engine_cache_dir, out.hub_cache_dir)
    ]
    for p in paths:
        if p is not None:
            p.absolute().mkdir(parents=True, exist_ok=True)
    hf, engines, hub = (None if p is None else p.absolute() for p in paths)
    assert hf is not None and engines is not None
    return hf, engines, hub
