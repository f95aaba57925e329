"""ApptainerRunner: `apptainer exec` (or `singularity exec`) of a .sif per run, for HPC.

The same exchange contract as Docker: the run directory is bound to /llem/run, the HF and
engine caches to /llem/hf-cache and /llem/engine-cache, and the image runs
`llem-harness run /llem/run` with a clean environment. The command line is built by
`apptainer_command` alone (unit tests pin it down). Secrets never appear on it: they travel
as APPTAINERENV_<NAME> (SINGULARITYENV_<NAME>) in the environment of the apptainer process,
which injects them even under --cleanenv. Apptainer runs as the calling user already, so
results are owned by the user. The process runs in its own process group: a timeout or Ctrl+C
kills the starter and the contained processes with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import LlemError
from llem_docker.execution.classify import log_tail
from llem_docker.execution.images import (
    SKIP_VAR,
    ImageInfo,
    ImageMismatch,
    handshake_problem,
    skip_check,
)
from llem_docker.execution.runners.base import EventHandler, RunOutcome
from llem_docker.execution.runners.container import (
    cache_dirs,
    container_request,
    parse_gpus,
)
from llem_docker.execution.runners.process import run_process
from llem_harness.host_api import ERROR_FILE, LOG_FILE, RESULT_FILE, RunnerInfo, host_has_rapl

INSPECT_TIMEOUT_S = 120.0
APPTAINER_FATAL = 255  # apptainer's own fatal errors (sylog.Fatalf)
HASH_CHUNK = 1 << 22


class ApptainerUnavailable(LlemError):
    """The apptainer/singularity binary is not on PATH."""


@dataclass(frozen=True)
class ApptainerOptions:
    """The machine-local choices: user config `apptainer:` and the `output:` caches."""

    binary: str  # apptainer | singularity (or a path to one)
    sif: Path
    gpus: list[str] | None  # None = all (the host's CUDA_VISIBLE_DEVICES, if set)
    containall: bool
    binds: tuple[str, ...]
    hf_cache_dir: Path
    engine_cache_dir: Path
    hf_hub_offline: bool
    hub_cache_dir: Path | None = None  # output.hub_cache_dir ($HF_HUB_CACHE)
    host_rapl: bool = False  # the host exposes RAPL (energy/rapl.py host_has_rapl)


def env_prefix(binary: str) -> str:
    """APPTAINERENV_ for apptainer, SINGULARITYENV_ for singularity."""
    return "SINGULARITYENV_" if Path(binary).name.startswith("singularity") else "APPTAINERENV_"


def apptainer_command(
    opts: ApptainerOptions, run_dir: Path, *, host_env: Mapping[str, str]
) -> list[str]:
    """The full command line for the run in `run_dir`: the runtime-neutral request
    (container.py) as `apptainer exec` arguments. Holds no secret."""
    req = container_request(opts, str(opts.sif), run_dir, host_env=host_env)
    argv = [opts.binary, "exec"]
    if req.gpus != []:
        argv.append("--nv")
    argv.append("--containall" if opts.containall else "--cleanenv")
    for mount in req.mounts:
        argv += ["--bind", f"{mount.source}:{mount.target}"]
    for spec in opts.binds:
        argv += ["--bind", spec]
    env = dict(req.env)
    if req.gpus is None:
        if host_env.get("CUDA_VISIBLE_DEVICES") is not None:  # e.g. SLURM's allocation
            env["CUDA_VISIBLE_DEVICES"] = host_env["CUDA_VISIBLE_DEVICES"]
    else:  # apptainer does not renumber: the host's indices are the container's
        env["CUDA_VISIBLE_DEVICES"] = ",".join(req.gpus)
    for name, value in env.items():
        argv += ["--env", f"{name}={value}"]
    argv += ["--pwd", req.workdir, req.image, *req.command]
    return argv


def process_env(opts: ApptainerOptions, host_env: Mapping[str, str]) -> dict[str, str]:
    """The apptainer process's own environment: the host's, plus each secret that is set as
    <PREFIX><NAME>, which apptainer injects into the container (cleanenv or not)."""
    prefix = env_prefix(opts.binary)
    secrets = container_request(opts, str(opts.sif), Path("."), host_env=host_env).secrets
    return dict(host_env) | {prefix + name: value for name, value in secrets.items()}


def read_labels(binary: str, sif: Path) -> dict[str, str]:
    """`<binary> inspect --json --labels <sif>` → the image's labels (the Docker image's
    LABELs survive `apptainer build … docker-daemon://`)."""
    what = f"`{Path(binary).name} inspect --json --labels {sif}`"
    fix = ". Fix: check the file, or rebuild it with `make sif`"
    try:
        proc = subprocess.run(
            [binary, "inspect", "--json", "--labels", str(sif)],
            capture_output=True,
            text=True,
            timeout=INSPECT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageMismatch(f"{what} did not run: {exc}{fix}") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ImageMismatch(f"{what} failed: {lines[-1] if lines else 'no output'}{fix}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ImageMismatch(f"{what} did not print JSON{fix}") from None
    attrs = data.get("data", {}).get("attributes", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in (attrs.get("labels") or {}).items()}


def sif_digest(sif: Path) -> str:
    """sha256 of the .sif file: what a reviewer compares to rerun on the same image."""
    h = hashlib.sha256()
    with sif.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class ApptainerRunner:
    def __init__(
        self, opts: ApptainerOptions, *, grace_s: float = 10.0, env: dict[str, str] | None = None
    ) -> None:
        self.opts = opts
        self.kind = "singularity" if env_prefix(opts.binary) == "SINGULARITYENV_" else "apptainer"
        self.grace_s = grace_s
        self.env = dict(os.environ if env is None else env)
        self._digest: str | None = None

    @classmethod
    def from_settings(
        cls, spec: RunnerSpec, settings: Settings, *, check: bool = True
    ) -> ApptainerRunner:
        """Find the binary and the .sif, check the image's handshake labels: each a clear
        error before anything runs. `check=False` (a SLURM submit host may lack apptainer)
        only warns when the binary is missing."""
        assert spec.target is not None
        warn = Console(stderr=True)
        binary = shutil.which(spec.kind, path=settings.env.get("PATH")) or spec.kind
        sif = Path(spec.target).expanduser().absolute()
        backend = spec.backend or "backend"
        if not sif.is_file():
            raise ImageMismatch(
                f"the {backend} image `{sif}` does not exist (runner `{spec.label}` from "
                f"{spec.source}). Fix: convert the Docker image with `make sif` "
                f"(BACKENDS={backend}), or point the runner at an existing .sif"
            )
        if not Path(binary).is_absolute():
            msg = (
                f"`{spec.kind}` is not on PATH (runner `{spec.label}` from {spec.source}). "
                f"Fix: install Apptainer, or `module load {spec.kind}`, or choose another runner"
            )
            if check:
                raise ApptainerUnavailable(msg)
            warn.print(f"[yellow]warning:[/yellow] {escape(msg)}; the image is not checked here")
        else:
            _handshake(binary, sif, backend, settings.env, warn)
        cache, engines, hub = cache_dirs(settings)  # a bind needs an existing source
        opts = ApptainerOptions(
            binary=binary,
            sif=sif,
            gpus=parse_gpus(
                settings.apptainer.gpus,
                source=settings.source("apptainer.gpus"),
                key="apptainer.gpus",
            ),
            containall=bool(settings.apptainer.containall),
            binds=tuple(settings.apptainer.binds),
            hf_cache_dir=cache,
            engine_cache_dir=engines,
            hf_hub_offline=bool(settings.apptainer.hf_hub_offline),
            hub_cache_dir=hub,
            host_rapl=host_has_rapl(),
        )
        return cls(opts, env=dict(settings.env))

    def info(self) -> RunnerInfo:
        if self._digest is None:
            self._digest = sif_digest(self.opts.sif)
        return RunnerInfo(type=self.kind, image=str(self.opts.sif), image_digest=self._digest)

    def command(self, run_dir: Path) -> list[str]:
        return apptainer_command(self.opts, run_dir, host_env=self.env)

    def run(self, run_dir: Path, *, timeout_s: float, on_event: EventHandler) -> RunOutcome:
        outcome = run_process(
            self.command(run_dir),
            run_dir,
            env=process_env(self.opts, self.env),
            timeout_s=timeout_s,
            on_event=on_event,
            grace_s=self.grace_s,
        )
        alone = not (outcome.timed_out or outcome.interrupted)
        harness_said = (run_dir / ERROR_FILE).exists() or (run_dir / RESULT_FILE).exists()
        if alone and outcome.exit_code == APPTAINER_FATAL and not harness_said:
            tail = log_tail(run_dir / LOG_FILE)
            outcome.failure = "ApptainerError"
            outcome.detail = (
                f"{self.kind} exited with {APPTAINER_FATAL}, its own error (a bind source "
                "that does not exist, an unreadable image, no space for its session "
                "directory) before or around the harness; last lines of "
                f"{LOG_FILE}:\n{tail or '(empty)'}"
            )
        return outcome


def _handshake(binary: str, sif: Path, backend: str, env: Mapping[str, str], warn: Console) -> None:
    info = ImageInfo(str(sif), present=True, image_id=None, labels=read_labels(binary, sif))
    problem = handshake_problem(info, backend, rebuild="rebuild it with `make sif`")
    if problem is None:
        return
    if not skip_check(env):
        raise ImageMismatch(problem)
    note = f"{SKIP_VAR} is set, so this is not checked: {problem}"
    warn.print(f"[yellow]warning:[/yellow] {escape(note)}")
