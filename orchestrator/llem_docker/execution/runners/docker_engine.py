"""Talking to the Docker engine: connect, describe a run's container, reap leftovers.

Everything here builds plain data for the `docker` SDK (no shell strings), so the container
a run gets is pinned down by `container_spec`, which unit tests check field by field.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem_docker.errors import ConfigError, LlemError
from llem_docker.store.lockfile import pid_alive

RUN_MOUNT = "/llem/run"
HF_MOUNT = "/llem/hf-cache"
HUB_MOUNT = "/llem/hf-hub"  # only when the host's hub cache lies outside the HF home
ENGINE_MOUNT = "/llem/engine-cache"
HARNESS_COMMAND = ("llem-harness", "run", RUN_MOUNT)
LABEL_STUDY, LABEL_RUN, LABEL_OWNER, LABEL_HOST = (
    "llem.study",
    "llem.run",
    "llem.owner_pid",
    "llem.host",
)
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
NO_GPU_DRIVER = "could not select device driver"


class DockerUnavailable(LlemError):
    """The engine cannot be reached (at start: nothing has run yet)."""


def connect(timeout_s: float = 120.0) -> Any:
    """A `docker.DockerClient` for the engine in the environment (DOCKER_HOST or the socket)."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "the default socket (/var/run/docker.sock)"
        raise DockerUnavailable(
            f"cannot reach the Docker engine at {where}: {first_line(exc)}. Nothing was run. "
            "Fix: start it (`sudo systemctl start docker`, or `dockerd &`), check that you may "
            "use it (`docker info`), or run without containers: --runner local"
        ) from None
    return client


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


@dataclass(frozen=True)
class ContainerOptions:
    """The machine-local choices (user config `docker:` and `output.model_cache_dir`)."""

    image: str
    gpus: list[str] | None  # None = all, [] = none
    shm_size: str | None  # None = ipc=host
    memory: str | None
    hf_cache_dir: Path
    hf_hub_offline: bool
    engine_cache_dir: Path
    user: str  # uid:gid
    hub_cache_dir: Path | None = None  # output.hub_cache_dir ($HF_HUB_CACHE)


def cache_dirs(settings: Any) -> tuple[Path, Path, Path | None]:
    """The HF home, the engine cache and the HF hub cache (None: under the HF home), made to
    exist so that no engine creates them owned by root."""
    paths = [
        None if (v := settings.value(f"output.{key}")) is None else Path(str(v)).expanduser()
        for key in ("model_cache_dir", "engine_cache_dir", "hub_cache_dir")
    ]
    for p in paths:
        if p is not None:
            p.absolute().mkdir(parents=True, exist_ok=True)
    hf, engines, hub = (None if p is None else p.absolute() for p in paths)
    assert hf is not None and engines is not None
    return hf, engines, hub


def container_name(study_id: str, run_id: str) -> str:
    """Deterministic, valid as a Docker name: [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    raw = f"llem-{study_id}-{run_id}"
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", raw)[:200]


def container_spec(
    opts: ContainerOptions,
    run_dir: Path,
    *,
    env: Mapping[str, str],
    owner_pid: int,
    host: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` for the run in `run_dir`."""
    from docker.types import DeviceRequest

    study_id, run_id = run_dir.parent.parent.name, run_dir.name
    environment = {
        "HOME": "/tmp",
        "HF_HOME": HF_MOUNT,
        "LLEM_ENGINE_CACHE": ENGINE_MOUNT,
        "PYTHONUNBUFFERED": "1",
    }
    if opts.hf_hub_offline:
        environment["HF_HUB_OFFLINE"] = "1"
    if opts.hub_cache_dir is not None:
        environment["HF_HUB_CACHE"] = HUB_MOUNT
    for name in PASSTHROUGH_ENV:
        if env.get(name):
            environment[name] = env[name]
    requests: list[Any] = []
    if opts.gpus is None:
        requests = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif opts.gpus:
        requests = [DeviceRequest(device_ids=list(opts.gpus), capabilities=[["gpu"]])]
        # The requested GPUs appear inside as 0..n-1; say so to CUDA and NVML users alike.
        environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(opts.gpus)))
    spec: dict[str, Any] = {
        "image": opts.image,
        "command": list(HARNESS_COMMAND),
        "name": container_name(study_id, run_id),
        "labels": {
            LABEL_STUDY: study_id,
            LABEL_RUN: run_id,
            LABEL_OWNER: str(owner_pid),
            LABEL_HOST: host or socket.gethostname(),
        },
        "user": opts.user,
        "environment": environment,
        "working_dir": RUN_MOUNT,
        "volumes": {
            str(run_dir.resolve()): {"bind": RUN_MOUNT, "mode": "rw"},
            str(opts.hf_cache_dir): {"bind": HF_MOUNT, "mode": "rw"},
            str(opts.engine_cache_dir): {"bind": ENGINE_MOUNT, "mode": "rw"},
            **(
                {str(opts.hub_cache_dir): {"bind": HUB_MOUNT, "mode": "rw"}}
                if opts.hub_cache_dir is not None
                else {}
            ),
        },
        "device_requests": requests,
        "init": True,  # signals reach the harness; Ctrl+C and timeouts stop it cleanly
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    if opts.shm_size is None:
        spec["ipc_mode"] = "host"
    else:
        spec["shm_size"] = opts.shm_size
    if opts.memory:
        spec["mem_limit"] = opts.memory
        spec["memswap_limit"] = opts.memory  # no swap: over the limit is an OOM kill
    return spec


def reap_orphans(client: Any, *, host: str | None = None) -> list[str]:
    """Remove containers that orchestrators on this host left behind when they died."""
    host = host or socket.gethostname()
    removed = []
    for c in client.containers.list(all=True, filters={"label": LABEL_OWNER}):
        labels = c.labels or {}
        if labels.get(LABEL_HOST) != host:
            continue
        try:
            pid = int(labels.get(LABEL_OWNER, ""))
        except ValueError:
            continue
        if pid != os.getpid() and pid_alive(pid):
            continue
        with contextlib.suppress(Exception):  # gone already, or being removed
            c.remove(force=True)
            removed.append(c.name)
    return removed


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
