"""`llem-docker doctor`: is this machine ready to run studies? One row per check, with the
fix for every row that is not ok."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from socket import gethostname
from typing import Any, Literal

from llem_docker.config.settings import Settings
from llem_docker.execution.images import handshake_problem, inspect_image
from llem_docker.execution.runners.container import parse_gpus
from llem_docker.execution.runners.docker_engine import (
    LABEL_HOST,
    LABEL_OWNER,
    LABEL_STUDY,
    DockerUnavailable,
    connect,
)
from llem_harness.host_api import BACKENDS

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def run_checks(
    settings: Settings, *, gpu_probe: bool = True, backends: tuple[str, ...] = BACKENDS
) -> list[Check]:
    checks = [_user_config(settings)]
    try:
        client = connect(timeout_s=30)
    except DockerUnavailable as exc:
        client = None
        checks.append(Check("docker engine", "fail", str(exc).split(". Nothing")[0], _FIX_ENGINE))
    else:
        v = client.version()
        checks.append(
            Check("docker engine", "ok", f"Docker {v.get('Version')} (API {v.get('ApiVersion')})")
        )
    probe_image = None
    for backend in backends:
        check, image = _backend(settings, backend, client)
        checks.append(check)
        probe_image = probe_image or image
    checks.append(_gpu_runtime(settings, client, probe_image) if gpu_probe else _skipped_gpu())
    checks.append(_host_nvml())
    checks.append(_apptainer())
    checks.append(_slurm())
    return checks


_FIX_ENGINE = "start Docker (`sudo systemctl start docker`), or check `docker info`"


def _user_config(settings: Settings) -> Check:
    path = settings.config_path
    where = f"{path} ({settings.config_path_rule})"
    if path.exists():
        return Check("user config", "ok", where)
    return Check("user config", "ok", f"{where}: not present, defaults apply")


def _backend(settings: Settings, backend: str, client: Any) -> tuple[Check, str | None]:
    name = f"{backend} runner"
    spec = settings.runner(backend)
    if spec.kind == "local":
        return Check(name, "ok", f"local (this Python environment), from {spec.source}"), None
    if spec.kind != "docker":
        return _sif(name, spec.kind, str(spec.target), backend), None
    assert spec.target is not None
    if client is None:
        return Check(name, "skip", f"docker:{spec.target} (no engine to ask)"), None
    info = inspect_image(client, spec.target)
    problem = handshake_problem(info, backend)
    if problem is not None:
        detail, _, fix = problem.partition(" Fix: ")
        return Check(name, "fail", detail, fix), None
    detail = (
        f"docker:{spec.target} · harness {info.harness_version} · "
        f"schema {info.fingerprint} · {info.digest}"
    )
    return Check(name, "ok", detail), spec.target


def _sif(name: str, kind: str, target: str, backend: str) -> Check:
    """An apptainer/singularity runner: the .sif exists and, where the binary is here, its
    labels pass the handshake."""
    from pathlib import Path

    from llem_docker.execution.images import ImageInfo, ImageMismatch
    from llem_docker.execution.runners.apptainer import read_labels

    sif = Path(target).expanduser()
    label = f"{kind}:{target}"
    if not sif.is_file():
        return Check(name, "fail", f"{label}: file not found", f"run `make sif BACKENDS={backend}`")
    size = f"{label} ({sif.stat().st_size / 1e9:.1f} GB)"
    binary = shutil.which(kind)
    if binary is None:
        return Check(name, "warn", f"{size}; labels not checked: no `{kind}` here", "")
    try:
        info = ImageInfo(target, present=True, labels=read_labels(binary, sif))
    except (ImageMismatch, OSError, ValueError, subprocess.SubprocessError) as exc:
        return Check(name, "fail", f"{size}: {exc}", "rebuild it with `make sif`")
    problem = handshake_problem(info, backend, rebuild="rebuild it with `make sif`")
    if problem is not None:
        detail, _, fix = problem.partition(" Fix: ")
        return Check(name, "fail", detail, fix)
    return Check(name, "ok", f"{size} · harness {info.harness_version} · schema {info.fingerprint}")


def _slurm() -> Check:
    name = "SLURM"
    if shutil.which("sbatch") is None:
        return Check(name, "skip", "no sbatch on PATH", "only needed for --executor slurm")
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a %D %T"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(name, "fail", f"sinfo failed: {exc}", "check the controller (scontrol ping)")
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Check(name, "fail", f"sinfo: {text[0]}", "check the controller (scontrol ping)")
    parts = "; ".join(line.strip() for line in proc.stdout.splitlines()[:4])
    return Check(name, "ok", f"partitions (name avail nodes state): {parts}")


def _skipped_gpu() -> Check:
    return Check("GPU in containers", "skip", "not probed (--no-gpu-probe)")


def _gpu_runtime(settings: Settings, client: Any, image: str | None) -> Check:
    name = "GPU in containers"
    gpus = parse_gpus(settings.docker.gpus, source=settings.source("docker.gpus"))
    if gpus == []:
        return Check(name, "skip", f"docker.gpus is none ({settings.source('docker.gpus')})")
    if client is None or image is None:
        return Check(name, "skip", "needs a running engine and a backend image")
    from docker.errors import DockerException
    from docker.types import DeviceRequest

    request = DeviceRequest(count=-1, capabilities=[["gpu"]])
    if gpus:
        request = DeviceRequest(device_ids=gpus, capabilities=[["gpu"]])
    labels = {LABEL_STUDY: "doctor", LABEL_OWNER: str(os.getpid()), LABEL_HOST: gethostname()}
    container = None
    try:
        container = client.containers.create(
            image,
            ["nvidia-smi", "-L"],
            device_requests=[request],
            entrypoint=[],
            labels=labels,  # a leftover (Ctrl+C) is reaped like a study's
        )
        container.start()
        code = container.wait(timeout=120).get("StatusCode")
        out = container.logs()
        if code != 0:
            raise DockerException(f"nvidia-smi exited {code}: {out.decode(errors='replace')}")
    except DockerException as exc:
        text = str(exc).splitlines()[0]
        return Check(
            name,
            "fail",
            f"`docker run --gpus` of {image} with nvidia-smi failed: {text}",
            "install the NVIDIA Container Toolkit and restart Docker; on a CPU-only host set "
            "`docker.gpus: none` in the user config",
        )
    finally:
        if container is not None:
            with contextlib.suppress(DockerException):
                container.remove(force=True)
    lines = out.decode(errors="replace").strip().splitlines()
    return Check(name, "ok", f"{len(lines)} GPU(s): " + "; ".join(lines))


def _host_nvml() -> Check:
    name = "NVML on the host"
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return Check(name, "warn", "nvidia-ml-py is not installed", "pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        return Check(
            name,
            "warn",
            f"no NVIDIA driver answers ({exc})",
            "fine on a CPU-only host: energy is then null with its reason",
        )
    return Check(name, "ok", f"driver {driver}, {count} GPU(s)")


def _apptainer(which: Callable[[str], str | None] = shutil.which) -> Check:
    name = "Apptainer/Singularity"
    for tool in ("apptainer", "singularity"):
        path = which(tool)
        if path:
            try:
                version = subprocess.run(
                    [path, "--version"], capture_output=True, text=True, timeout=20, check=False
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError) as exc:
                version = f"(version unknown: {exc})"
            return Check(name, "ok", f"{path}: {version}")
    return Check(
        name,
        "warn",
        "neither apptainer nor singularity is on PATH",
        "only needed for HPC runners and `make sif`: install Apptainer",
    )
