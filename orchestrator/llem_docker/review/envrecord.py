"""The environment a study ran in, and the one a rerun is about to use: one `EnvRecord` each
(their differences field by field are envdiff.py's).

`study_environment` reads a results folder: the `environment` block of the first completed
run's result.json (runs that disagree on the GPU model or the driver are noted), and the
runner records of manifest.json and study.json. `current_environment` asks this host what it
can tell without GPU libraries: `nvidia-smi`, /proc/cpuinfo, `platform`, and for the docker
runners the image's digest from the Docker engine (an injectable callable, so nothing here
needs Docker to be tested).

Every fact is a `Fact`: a value, or null with the reason it is unknown. The harness does not
record the clocks policy, the MIG mode or the ECC state, so both records leave them null
(`NOT_RECORDED`) rather than guess.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.images import ImageInfo
from llem_docker.store.layout import StudyDir
from llem_harness.host_api import __version__, cpu_model

ENV_SCHEMA_VERSION = "1.0"
NOT_RECORDED = "not recorded by the harness"
NOT_APPLICABLE = "not applicable"  # the prefix of a reason that makes a null a match
NO_LOCAL_IMAGE = f"{NOT_APPLICABLE}: the local runner uses no image"
NO_SMI = "nvidia-smi not found"
AT_RUN = "known once a run starts: the run records it in result.json"
SMI_TIMEOUT_S = 10.0
SMI_QUERY = (
    "--query-gpu=name,driver_version,power.limit,persistence_mode,count",
    "--format=csv,noheader",
)
CONTAINER_KINDS = ("docker", "apptainer", "singularity")

Scalar = str | int | float | bool | None
SmiQuery = Callable[[], str | None]  # nvidia-smi's answer to SMI_QUERY; None: not installed
ImageInspector = Callable[[str], ImageInfo]  # an image reference → what the engine knows of it


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fact(_Model):
    """One fact: its value, or null and why it is not known."""

    value: Scalar = None
    unknown_reason: str | None = None


def fact(value: Any, reason: str) -> Fact:
    """`value` when known (not None, not empty), else null with `reason`."""
    if value is None or value == "":
        return Fact(unknown_reason=reason)
    return Fact(value=value)


def _not_recorded() -> Fact:
    return Fact(unknown_reason=NOT_RECORDED)


def _unknown(reason: str, *names: str) -> dict[str, Fact]:
    return {n: Fact(unknown_reason=reason) for n in names}


class BackendEnv(_Model):
    """What one backend ran with: its engine, runner and image."""

    engine: str
    engine_version: Fact
    runner: Fact  # the runner kind chosen: local | docker | apptainer | singularity
    container_runtime: Fact  # the runtime the run saw ("none" for the local runner)
    image: Fact  # the Docker image reference or the .sif path
    image_digest: Fact


class EnvRecord(_Model):
    """The machine and software a study ran on (`describes: study`), or a host about to
    rerun it (`describes: host`)."""

    schema_version: str = ENV_SCHEMA_VERSION
    describes: Literal["study", "host"]
    gpu_model: Fact
    gpu_count: Fact
    driver_version: Fact
    cuda_driver_version: Fact
    cuda_runtime_version: Fact
    power_limit_w: Fact
    persistence_mode: Fact
    clocks_policy: Fact = Field(default_factory=_not_recorded)
    mig_mode: Fact = Field(default_factory=_not_recorded)
    ecc_state: Fact = Field(default_factory=_not_recorded)
    cpu_model: Fact
    cpu_count: Fact
    os: Fact
    python: Fact
    harness_version: Fact
    backends: dict[str, BackendEnv] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


_NOT_FACTS = ("schema_version", "describes", "backends", "notes")
MACHINE_FIELDS = tuple(f for f in EnvRecord.model_fields if f not in _NOT_FACTS)
BACKEND_FIELDS = tuple(f for f in BackendEnv.model_fields if f != "engine")


# -- the study's record ---------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; empty when the file is missing, unreadable or no object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def distinct(values: Iterable[Any]) -> list[Any]:
    """The values that are known, each once, in order."""
    out: list[Any] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def _completed_envs(sd: StudyDir, manifest: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(backend, environment block) of every completed run with a result.json, in run order."""
    found = []
    for entry in manifest.get("runs") or []:
        if not isinstance(entry, dict) or entry.get("state") != "completed":
            continue
        result = read_json(sd.run(str(entry.get("run_id"))).result)
        env = result.get("environment")
        if result and isinstance(env, dict):
            found.append((str(entry.get("backend") or result.get("backend")), env))
    return found


def _gpus(env: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [g for g in env.get("gpus") or [] if isinstance(g, dict)]


def _gpu_model(env: Mapping[str, Any]) -> str | None:
    return ", ".join(distinct(g.get("name") for g in _gpus(env))) or None


def _one_of(values: list[Any], what: str, reason: str) -> Fact:
    """The GPUs' common value, null when they differ or none is known."""
    if len(values) > 1:
        return Fact(unknown_reason=f"the GPUs' {what} differ: {', '.join(map(str, values))}")
    return fact(values[0] if values else None, reason)


def _machine_from_env(env: Mapping[str, Any] | None) -> dict[str, Fact]:
    """The machine's facts from one run's environment block (None: no completed run)."""
    missing = "no completed run has a result.json"
    reason = missing if env is None else "not in the first completed run's result.json"
    e: Mapping[str, Any] = env or {}
    gpus = _gpus(e)
    gpu_reason = reason if gpus or env is None else (
        str(e.get("gpu_unavailable_reason") or "no GPU was measured")
    )  # fmt: skip
    first = gpus[0] if gpus else {}
    facts = {k: fact(e.get(k) or first.get(k), gpu_reason)
             for k in ("driver_version", "cuda_driver_version")}  # fmt: skip
    for k in ("power_limit_w", "persistence_mode"):
        facts[k] = _one_of(distinct(g.get(k) for g in gpus), k.replace("_", " "), gpu_reason)
    names = {"cpu_model": "cpu", "cuda_runtime_version": None, "cpu_count": None, "os": None,
             "python": None, "harness_version": None}  # fmt: skip
    facts |= {k: fact(e.get(src or k), reason) for k, src in names.items()}
    return facts | {
        "gpu_model": fact(_gpu_model(e), gpu_reason),
        "gpu_count": fact(e.get("gpu_count"), gpu_reason),
    }


def _disagreements(envs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    notes = []
    for what, get in (
        ("the GPU model", _gpu_model),
        ("the driver version", lambda e: e.get("driver_version")),
    ):
        counts = Counter(str(get(e)) for _, e in envs if get(e) is not None)
        if len(counts) > 1:
            each = ", ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in counts.most_common())
            notes.append(f"the completed runs disagree on {what}: {each}; the first run's is kept")
    return notes


def _runtime(kind: str | None) -> str | None:
    """The container runtime a runner kind implies ("none" for the local runner)."""
    if kind == "local":
        return "none"
    return kind if kind in CONTAINER_KINDS else None


def _study_backend(
    backend: str, choice: Mapping[str, Any], record: Mapping[str, Any], env: Mapping[str, Any]
) -> BackendEnv:
    """One backend's record: manifest.json's runner choice, study.json's runner record, and
    the environment of its first completed run."""
    kind = record.get("kind") or choice.get("kind")
    run_reason = "no completed run of this backend" if not env else "not in its result.json"
    runner_reason = "not in manifest.json or study.json"
    seen = env.get("runner")
    runtime = _runtime(str(seen)) or seen or _runtime(kind)
    if kind == "local":
        image = digest = Fact(unknown_reason=NO_LOCAL_IMAGE)
    else:
        image = fact(choice.get("target") or record.get("target") or env.get("image"), run_reason)
        digest = fact(record.get("image_digest") or env.get("image_digest"), run_reason)
    return BackendEnv(
        engine=backend,
        engine_version=fact(env.get("backend_version"), run_reason),
        runner=fact(kind, runner_reason),
        container_runtime=fact(runtime, runner_reason),
        image=image,
        image_digest=digest,
    )


def study_environment(study_dir: Path) -> EnvRecord:
    """The environment the study in `study_dir` ran in, as its files recorded it."""
    sd = StudyDir(study_dir)
    manifest, study = read_json(sd.manifest), read_json(sd.study_json)
    envs = _completed_envs(sd, manifest)
    notes = _disagreements(envs)
    if not manifest:
        notes.append(f"{sd.manifest.name} is missing or unreadable")
    choices: dict[str, Any] = manifest.get("runners") or {}
    records: dict[str, Any] = study.get("runners") or {}
    names = distinct([*choices, *records, *(b for b, _ in envs)])
    backends = {
        b: _study_backend(
            b,
            choices.get(b) or {},
            records.get(b) or {},
            next((e for eb, e in envs if eb == b), {}),
        )
        for b in names
    }
    machine = _machine_from_env(envs[0][1] if envs else None)
    return EnvRecord(describes="study", backends=backends, notes=notes, **machine)


# -- this host's record ---------------------------------------------------------------------
def default_smi(env: Mapping[str, str]) -> SmiQuery:
    """Run SMI_QUERY with the nvidia-smi on `env`'s PATH (None when there is none)."""

    def query() -> str | None:
        exe = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
        if exe is None:
            return None
        done = subprocess.run(
            [exe, *SMI_QUERY], capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=True
        )
        return done.stdout

    return query


def _watts(text: str) -> float | None:
    match = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)", text)  # "700.00 W"; "[N/A]"
    return float(match.group(1)) if match else None


def _gpu_facts(rows: list[list[str]]) -> dict[str, Fact]:
    """GPU facts from nvidia-smi's rows: name, driver, power.limit, persistence_mode, count."""
    none, modes = "nvidia-smi lists no GPU", {"enabled": True, "disabled": False}
    return {
        "gpu_model": fact(", ".join(distinct(r[0] for r in rows)), none),
        "gpu_count": Fact(value=len(rows)),
        "driver_version": _one_of(distinct(r[1] for r in rows), "driver versions", none),
        "power_limit_w": _one_of(distinct(_watts(r[2]) for r in rows), "power limits", none),
        "persistence_mode": _one_of(
            distinct(modes.get(r[3].lower()) for r in rows), "persistence modes", none
        ),
    }


def _smi_facts(query: SmiQuery) -> dict[str, Fact]:
    """GPU facts from nvidia-smi; every one unknown, with the reason, when it cannot say."""
    try:
        text = query()
        reason = NO_SMI if text is None else ""
    except subprocess.TimeoutExpired:
        text, reason = None, f"nvidia-smi did not answer within {SMI_TIMEOUT_S:g} s"
    except subprocess.CalledProcessError as exc:
        text, reason = None, f"nvidia-smi failed (exit code {exc.returncode})"
    except OSError as exc:
        text, reason = None, f"nvidia-smi could not be run: {exc.strerror or exc}"
    facts = _unknown(reason, "gpu_model", "gpu_count", "driver_version", "power_limit_w",
                     "persistence_mode")  # fmt: skip
    if text is not None:
        rows = [[c.strip() for c in line.rsplit(",", 4)] for line in text.splitlines()]
        facts = _gpu_facts([r for r in rows if len(r) == 5])  # a name may hold a comma
    facts["cuda_driver_version"] = Fact(unknown_reason="not among nvidia-smi's --query-gpu fields")
    return facts


def docker_inspector(timeout_s: float = 30.0) -> ImageInspector:
    """Inspect images with the Docker engine of the environment (connected at once)."""
    from llem_docker.execution.images import inspect_image
    from llem_docker.execution.runners.docker_engine import connect

    client = connect(timeout_s)
    return lambda ref: inspect_image(client, ref)


def _image_digest(spec: RunnerSpec, inspect: ImageInspector | None) -> Fact:
    if spec.target is None:
        return Fact(unknown_reason="the runner names no image")
    if spec.kind != "docker":
        from llem_docker.execution.runners.apptainer import sif_digest

        sif = Path(spec.target)
        return fact(sif_digest(sif) if sif.is_file() else None, f"{sif} does not exist")
    try:
        info = (inspect or docker_inspector())(spec.target)
    except Exception as exc:  # the Docker SDK's errors, and DockerUnavailable
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Fact(unknown_reason=f"the Docker engine could not be asked: {first}")
    return fact(info.digest if info.present else None, f"the image {spec.target} is not here")


def _host_backend(backend: str, spec: RunnerSpec, inspect: ImageInspector | None) -> BackendEnv:
    local = spec.kind == "local"
    return BackendEnv(
        engine=backend,
        engine_version=Fact(unknown_reason=AT_RUN),
        runner=Fact(value=spec.kind),
        container_runtime=fact(_runtime(spec.kind), "unknown runner kind"),
        image=Fact(unknown_reason=NO_LOCAL_IMAGE) if local else fact(spec.target, "no image"),
        image_digest=Fact(unknown_reason=NO_LOCAL_IMAGE) if local else _image_digest(spec, inspect),
    )


def current_environment(
    settings: Settings,
    runners: Mapping[str, RunnerSpec],
    *,
    smi: SmiQuery | None = None,
    inspect: ImageInspector | None = None,
) -> EnvRecord:
    """What this host can tell of the environment a rerun with `runners` would get, without
    GPU libraries. `smi` answers nvidia-smi's query (default: nvidia-smi on the PATH of
    `settings.env`, 10 s at most); `inspect` looks a Docker image up (default: the Docker
    engine of the environment, reached only when a runner is `docker`)."""
    machine = _smi_facts(smi or default_smi(settings.env))
    all_local = bool(runners) and all(s.kind == "local" for s in runners.values())
    in_image = "" if all_local else "the runs use their image's; " + AT_RUN
    machine |= {
        "cuda_runtime_version": Fact(unknown_reason=AT_RUN),
        "cpu_model": fact(cpu_model(), "/proc/cpuinfo names no model"),
        "cpu_count": fact(os.cpu_count(), "os.cpu_count() cannot tell"),
        "os": fact(platform.platform(), "platform cannot tell"),
        "python": fact(platform.python_version() if all_local else None, in_image),
        "harness_version": fact(__version__ if all_local else None, in_image),
    }
    backends = {b: _host_backend(b, s, inspect) for b, s in runners.items()}
    return EnvRecord(describes="host", backends=backends, **machine)
