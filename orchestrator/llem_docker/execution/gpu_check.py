"""The dry run's GPU check for `quantization:` (docs/quantization.md).

The host has no GPU libraries; `nvidia-smi` (the driver's own tool) tells it which GPUs this
host has and their compute capability. A study whose runs execute on this host (the local,
docker and apptainer runners) is refused before anything runs when a point's quantization
cannot run on those GPUs, or needs a GPU and the host shows none. Under SLURM the GPUs are
on other nodes: the harness makes the same check there, before the model loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.runners.container import parse_gpus
from llem_docker.study.plan import ExperimentPoint, StudyPlan
from llem_harness.host_api import engine, gpu_problem, parse_visible_devices

QUERY = ["--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader"]


def host_gpus(
    selection: list[str] | None, smi: str | None = None, visible: str | None = None
) -> list[tuple[str, float]] | None:
    """(name, compute capability) of the GPUs this host's runs get: `selection` as
    `parse_gpus` returns it (None: all; []: none; or indices/UUIDs), in nvidia-smi's order,
    or `visible`, a CUDA_VISIBLE_DEVICES value read as CUDA reads it, in its order. No
    nvidia-smi: no NVIDIA driver, so none. None where the driver cannot say (nvidia-smi fails,
    or a chosen GPU's capability reads `[N/A]`): the harness then checks inside the run."""
    smi = smi or shutil.which("nvidia-smi")
    if selection == [] or smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, *QUERY], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [p for p in (line.split(",") for line in out.splitlines()) if len(p) == 4]
    rows = [[c.strip() for c in p] for p in rows]  # index, uuid, name, compute_cap
    if visible is not None:
        rows = [rows[i] for i in parse_visible_devices(visible, [r[1] for r in rows])]
    wanted = None if selection is None else {s.lower() for s in selection}
    rows = [r for r in rows if wanted is None or r[0] in wanted or r[1].lower() in wanted]
    try:
        return [(name, float(cap)) for _, _, name, cap in rows]
    except ValueError:  # "[N/A]": an older driver
        return None


def _selection(kind: str, settings: Settings) -> list[str] | None:
    """The GPUs a container runner hands a run (docker.gpus, apptainer.gpus); the local
    runner passes CUDA_VISIBLE_DEVICES on instead (check_quantization)."""
    if kind == "local":
        return None
    key = "docker.gpus" if kind == "docker" else "apptainer.gpus"
    section = settings.docker if kind == "docker" else settings.apptainer
    return parse_gpus(section.gpus, source=settings.source(key), key=key)


def check_quantization(
    plan: StudyPlan,
    settings: Settings,
    runners: dict[str, RunnerSpec],
    study_file: Path | str,
    smi: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Refuse the plan when a point's quantization cannot run on the GPUs its runner gives
    it on this host: the first as many as the point uses (its tensor-parallel size)."""
    env = os.environ if env is None else env
    seen: dict[str, list[tuple[str, float]] | None] = {}
    for point in plan.points:
        cfg = point.config
        if cfg.quantization == "none":
            continue
        kind = runners[cfg.backend].kind
        if kind not in seen:
            visible = env.get("CUDA_VISIBLE_DEVICES") if kind == "local" else None
            seen[kind] = host_gpus(_selection(kind, settings), smi, visible)
        gpus = seen[kind]
        if gpus is None:  # the driver cannot say: the harness checks in the run
            continue
        problem = gpu_problem(cfg.backend, cfg.quantization, gpus[: engine(cfg.backend).gpus(cfg)])
        if problem is not None:
            where = "docker.gpus" if kind == "docker" else "apptainer.gpus"
            raise ConfigError(
                f"{problem}" + (f" (the point {_label(point)})" if point.swept else ""),
                source=study_file,
                key=_key(point),
                fix="run the study on a host with such a GPU, choose the GPUs the runs get "
                + ("(CUDA_VISIBLE_DEVICES)" if kind == "local" else f"(--gpus, {where})")
                + ", submit it with --executor slurm (the harness checks the nodes' GPUs), "
                "or remove that quantization",
            )


def _label(point: ExperimentPoint) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.swept.items())


def _key(point: ExperimentPoint) -> str:
    """Where the point's quantization was written: a sweep axis, an experiments entry, or the
    top level."""
    swept = [k for k in point.swept if k.split(".")[-1] == "quantization"]
    if swept and point.origin == "grid":
        return f"sweep.{swept[0]}"
    if point.origin != "grid":
        return f"{point.origin}.quantization"
    return "quantization"
