"""Talking to the Docker engine: connect, describe a run's container (the request of
container.py in the SDK's terms), reap leftovers.

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
from llem_docker.execution.runners.container import container_request
from llem_docker.store.lockfile import pid_alive

LABEL_STUDY, LABEL_RUN, LABEL_OWNER, LABEL_HOST = (
    "llem.study",
    "llem.run",
    "llem.owner_pid",
    "llem.host",
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
    host_rapl: bool = False  # the host exposes RAPL (energy/rapl.py host_has_rapl)
    # network_mode; None: the engine's default (bridge); AUTO: decided run by run
    network: str | None = None


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
    needs_hub: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` for the run in `run_dir`: the
    runtime-neutral request (container.py) in the Docker SDK's terms. `needs_hub`: whether
    the run may need the Hugging Face hub (with `network: auto`, one that does not gets no
    network)."""
    from docker.types import DeviceRequest

    study_id, run_id = run_dir.parent.parent.name, run_dir.name
    req = container_request(
        opts,
        opts.image,
        run_dir,
        host_env=env,
        labels={
            LABEL_STUDY: study_id,
            LABEL_RUN: run_id,
            LABEL_OWNER: str(owner_pid),
            LABEL_HOST: host or socket.gethostname(),
        },
    )
    # Containers run as the calling user, who has no home in the image.
    environment = {"HOME": "/tmp", **req.env, **req.secrets}
    requests: list[Any] = []
    if req.gpus is None:
        requests = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif req.gpus:
        requests = [DeviceRequest(device_ids=list(req.gpus), capabilities=[["gpu"]])]
        # The requested GPUs appear inside as 0..n-1; say so to CUDA and NVML users alike.
        environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(req.gpus)))
    spec: dict[str, Any] = {
        "image": req.image,
        "command": list(req.command),
        "name": container_name(study_id, run_id),
        "labels": req.labels,
        "user": opts.user,
        "environment": environment,
        "working_dir": req.workdir,
        "volumes": {str(m.source): {"bind": m.target, "mode": "rw"} for m in req.mounts},
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
    network = network_mode(opts.network, needs_hub=needs_hub)
    if network is not None:
        spec["network_mode"] = network
    if opts.memory:
        spec["mem_limit"] = opts.memory
        spec["memswap_limit"] = opts.memory  # no swap: over the limit is an OOM kill
    return spec


BUILTIN_NETWORKS = ("none", "bridge", "host")
AUTO = "auto"


def network_mode(setting: str | None, *, needs_hub: bool) -> str | None:
    """A run's network_mode from the resolved setting (None: the engine's default)."""
    if setting == AUTO:
        return None if needs_hub else "none"
    return setting


def resolve_network(client: Any, value: str, *, hf_hub_offline: bool, source: str) -> str | None:
    """`docker.network` → the containers' network_mode (None: the engine's default; AUTO: run
    by run, `container_spec`'s `needs_hub`).

    `auto` cuts a run off every network but its own loopback (where the serving scenario's
    server and load generator talk) when it cannot need anything from outside: with
    `hf_hub_offline`, or with dummy weights of a model whose config the harness ships. That
    also spares the engine a virtual interface per container, about 65 ms of each run's
    start and end here (bench/README.md). A named network must exist: refused here, before
    any run."""
    text = value.strip()
    if text == AUTO:
        return "none" if hf_hub_offline else AUTO
    if text in BUILTIN_NETWORKS:
        return text
    from docker.errors import APIError, NotFound

    fix = (
        "use auto, none, bridge or host, or create it first (`docker network create "
        f"{text}`); `docker network ls` lists those there are"
    )
    try:
        client.networks.get(text)
    except NotFound:
        raise ConfigError(
            f"the Docker network `{text}` does not exist on this engine",
            source=source,
            key="docker.network",
            fix=fix,
        ) from None
    except APIError as exc:  # e.g. a prefix of several networks' names
        raise ConfigError(
            f"the Docker engine cannot use `{text}` as a network: {first_line(exc)}",
            source=source,
            key="docker.network",
            fix=fix,
        ) from None
    return text


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
