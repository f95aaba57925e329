"""The dry run's GPU check for `quantization:` (docs/quantization.md).

The host has no GPU libraries; `nvidia-smi` (the driver's own tool) tells it which GPUs this
host has and their compute capability. A study whose runs execute on this host (the local,
docker and apptainer runners) is refused before anything runs when a point's quantization
cannot run on those GPUs, or needs a GPU and the host shows none. Under SLURM the GPUs are
on other nodes: the harness makes the same check there, before the model loads.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.runners.container import parse_gpus
from llem_docker.study.plan import StudyPlan
from llem_harness.quantization import gpu_problem

QUERY = ["--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader"]


def host_gpus(selection: list[str] | None, smi: str | None = None) -> list[tuple[str, float]]:
    """(name, compute capability) of the GPUs this host's runs get: `selection` as
    `parse_gpus` returns it (None: all; []: none; or indices/UUIDs). No nvidia-smi: none."""
    smi = smi or shutil.which("nvidia-smi")
    if selection == [] or smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, *QUERY], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):  # a driver that does not answer: no GPU
        return []
    found = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        index, uuid, name, cap = parts
        if selection is not None and index not in selection and uuid.lower() not in selection:
            continue
        try:
            found.append((name, float(cap)))
        except ValueError:  # "[N/A]": an old driver; the harness checks in the container
            continue
    return found


def check_quantization(
    plan: StudyPlan,
    settings: Settings,
    runners: dict[str, RunnerSpec],
    study_file: Path,
    smi: str | None = None,
) -> None:
    """Refuse the plan when a point's quantization cannot run on the GPUs its runner gets on
    this host (docker.gpus, apptainer.gpus; the local runner: all)."""
    wanted = sorted(
        {(p.config.backend, p.config.quantization) for p in plan.points}
        - {(b, "none") for b in ("pytorch", "vllm", "tensorrt")}
    )
    for backend, method in wanted:
        kind = runners[backend].kind
        selection = None
        if kind != "local":
            key = "docker.gpus" if kind == "docker" else "apptainer.gpus"
            section = settings.docker if kind == "docker" else settings.apptainer
            selection = parse_gpus(section.gpus, source=settings.source(key), key=key)
        problem = gpu_problem(backend, method, host_gpus(selection, smi))
        if problem is not None:
            raise ConfigError(
                problem,
                source=study_file,
                key="quantization",
                fix="run the study on a host with such a GPU (or submit it with --executor "
                "slurm, whose nodes the harness checks), or remove that quantization",
            )
