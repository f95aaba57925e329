"""`pack`: one study's results folder as a single .tar.gz a reviewer can check and rerun.

The archive holds, under a top folder named after the study: `pack.json` (first, so a reader
finds it without reading the rest), `study.yaml` (the study file as given), study.json,
manifest.json, results.parquet, `report.md`, and per run experiment.json, result.json,
error.json and the run's dataset copy; with `raw` also the per-run Parquet files
(timeseries, requests, responses, engine metrics) and container.log.

Nothing secret goes in: every file is searched for the current values of the secret
environment variables (HF_TOKEN and the like) and every text file for lines that set one
(`HF_TOKEN=...`); a hit refuses the pack, naming the file. Nothing is redacted. The archive
is written to a temporary file and renamed, so a reader never sees half of one.

Reading a pack back is unpack.py's.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.progress import Progress

from llem_docker.config.secrets import key_looks_secret
from llem_docker.errors import ConfigError, LlemError
from llem_docker.execution.prepare import RUN_DATASET
from llem_docker.execution.runners.container import PASSTHROUGH_ENV
from llem_docker.review.envrecord import EnvRecord, read_json, study_environment
from llem_docker.store.layout import STUDY_SOURCE_FILE, StudyDir
from llem_docker.store.manifest import utc_now
from llem_harness.host_api import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    LOG_FILE,
    RESULT_FILE,
    __version__,
)

PACK_SCHEMA_VERSION = "1.0"
PACK_FILE = "pack.json"
REPORT_FILE = "report.md"
SUFFIX = ".llem-pack.tar.gz"
# Secret variables beside those the containers get (PASSTHROUGH_ENV) and any the environment
# holds whose name looks like a credential (config/secrets.py's rule).
SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MIN_SECRET_LEN = 8  # shorter values match too much by chance
TEXT_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml", ".log", ".md", ".txt")
CHUNK = 1 << 20
PROGRESS_BYTES = 64 << 20  # a progress bar from this much data on, on a terminal


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PackedFile(_Model):
    path: str  # inside the top folder, "/"-separated
    bytes: int
    sha256: str


class PackedImage(_Model):
    image: str | None
    digest: str | None


class StudySource(_Model):
    """Where the packed study.yaml came from, or why there is none."""

    packed: bool
    source: str | None  # study.yaml (copied when the study started) or the manifest's path
    note: str | None = None


class PackInfo(_Model):
    """pack.json."""

    schema_version: str = PACK_SCHEMA_VERSION
    llem_version: str = __version__
    created_at: str
    study_id: str
    design_hash: str
    images: dict[str, PackedImage]
    harness_version: str | None
    engine_versions: dict[str, str | None]
    environment: EnvRecord
    files: list[PackedFile]  # every file but pack.json itself
    raw: bool
    study_file: StudySource
    notes: list[str]


# -- secrets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Secrets:
    """What may not be in a pack: these variables' values, and lines that set them."""

    values: dict[str, bytes]  # name → its current value
    line: re.Pattern[bytes]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        names = {*SECRET_VARS, *(n for n in PASSTHROUGH_ENV if key_looks_secret(n))}
        names |= {n for n in env if key_looks_secret(n)}
        values = {n: env[n].encode() for n in sorted(names)
                  if len(env.get(n, "").strip()) >= MIN_SECRET_LEN}  # fmt: skip
        alts = b"|".join(re.escape(n.encode()) for n in sorted(names))
        line = re.compile(
            rb"(?<![A-Za-z0-9_])(" + alts + rb")[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9_\-]{8,}",
            re.IGNORECASE,
        )
        return cls(values, line)

    @property
    def keep(self) -> int:
        """The bytes a window keeps from the chunk before, so no match straddles two."""
        return max([4096, *(len(v) for v in self.values.values())])

    def check(self, window: bytes, name: str, source: Path | str, text: bool) -> None:
        for var, value in self.values.items():
            if value in window:
                _refuse(name, source, f"holds the value of ${var}")
        if text and (m := self.line.search(window)):
            _refuse(name, source, f"has a line that sets {m.group(1).decode()}")


def _refuse(name: str, source: Path | str, what: str) -> None:
    raise ConfigError(
        f"{name} {what} (the value is not shown); a pack must never hold a secret, so nothing "
        "was written",
        source=source,
        fix="remove the secret from that file (or, for a log, the run's output that printed "
        "it), then pack again; `--no-raw` leaves container.log out",
    )


def _is_text(name: str) -> bool:
    return name.endswith(TEXT_SUFFIXES)


# -- what goes in ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    name: str  # inside the top folder
    path: Path | None  # the file on disk, or None for `data`
    data: bytes = b""

    def size(self) -> int:
        return len(self.data) if self.path is None else self.path.stat().st_size


def _study_source(sd: StudyDir, manifest: Mapping[str, Any]) -> tuple[Path | None, StudySource]:
    if sd.study_source.is_file():
        return sd.study_source, StudySource(packed=True, source=STUDY_SOURCE_FILE)
    given = manifest.get("study_file")
    if isinstance(given, str) and given and Path(given).is_file():
        note = (
            f"the folder has no {STUDY_SOURCE_FILE} (it predates that copy): packed from the "
            "manifest's study_file path, which may have changed since the study ran"
        )
        return Path(given), StudySource(packed=True, source=given, note=note)
    where = f"study_file {given} does not exist" if given else "study_file is empty"
    note = f"the study file is missing: no {STUDY_SOURCE_FILE} in the folder, and the manifest's "
    note += where
    return None, StudySource(packed=False, source=None, note=note)


def _run_files(run_dir: Path, raw: bool) -> list[Path]:
    names = [EXPERIMENT_FILE, RESULT_FILE, ERROR_FILE, RUN_DATASET]
    files = [run_dir / n for n in names if (run_dir / n).is_file()]
    if raw:  # timeseries, requests, responses, engine metrics: every Parquet file of the run
        files += sorted(p for p in run_dir.glob("*.parquet") if p.is_file())
        files += [run_dir / LOG_FILE] if (run_dir / LOG_FILE).is_file() else []
    return files


def _members(sd: StudyDir, manifest: Mapping[str, Any], study_yaml: Path | None,
             raw: bool) -> list[Member]:  # fmt: skip
    out = [Member(STUDY_SOURCE_FILE, study_yaml)] if study_yaml else []
    for p in (sd.study_json, sd.manifest, sd.results_parquet):
        if p.is_file():
            out.append(Member(p.name, p))
    for entry in manifest.get("runs") or []:
        run = sd.run(str(entry.get("run_id"))) if isinstance(entry, dict) else None
        if run is not None and run.path.is_dir():
            rel = run.path.relative_to(sd.path).as_posix()
            out += [Member(f"{rel}/{f.name}", f) for f in _run_files(run.path, raw)]
    return out


def _report(study_dir: Path) -> tuple[bytes | None, str | None]:
    """report.md as `llem-docker report --format md` writes it, without the figures."""
    from llem_docker.report.points import build_report
    from llem_docker.report.render import markdown

    try:
        return markdown(build_report(study_dir), None).encode(), None
    except (LlemError, OSError, ValueError, KeyError) as exc:
        return None, f"{REPORT_FILE} is not in the pack: {exc}"


# -- checking and writing --------------------------------------------------------------------
@contextmanager
def _progress(total: int, show: bool) -> Iterator[Progress]:
    console = Console(stderr=True)
    quiet = not show or not console.is_terminal or total < PROGRESS_BYTES
    with Progress(console=console, transient=True, disable=quiet) as bar:
        yield bar


def _check(m: Member, top: str, secrets: Secrets, advance: Any) -> PackedFile:
    """Hash one member and search it for secrets, chunk by chunk."""
    h, size, tail = hashlib.sha256(), 0, b""
    source: Path | str = m.path if m.path is not None else f"{top}/{m.name}"
    with m.path.open("rb") if m.path is not None else io.BytesIO(m.data) as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            window = tail + chunk
            secrets.check(window, m.name, source, _is_text(m.name))
            tail = window[-secrets.keep :]
            advance(len(chunk))
    return PackedFile(path=m.name, bytes=size, sha256=h.hexdigest())


class _Hashing:
    """A file read through, hashed on the way (to tell a file that changed while packed)."""

    def __init__(self, fh: IO[bytes], advance: Any) -> None:
        self.fh, self.h, self.advance = fh, hashlib.sha256(), advance

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.h.update(data)
        self.advance(len(data))
        return data


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write(tar: tarfile.TarFile, top: str, m: Member, f: PackedFile, advance: Any) -> None:
    if m.path is None:
        tar.addfile(_tarinfo(f"{top}/{m.name}", len(m.data), time.time()), io.BytesIO(m.data))
        return
    changed = f"{m.path} changed while it was packed. Fix: pack once the study is done"
    with m.path.open("rb") as fh:
        reader = _Hashing(fh, advance)
        info = _tarinfo(f"{top}/{m.name}", f.bytes, m.path.stat().st_mtime)
        try:
            tar.addfile(info, cast(IO[bytes], reader))
        except OSError as exc:  # shorter than it was: "unexpected end of data"
            raise LlemError(changed) from exc
    if reader.h.hexdigest() != f.sha256:
        raise LlemError(changed)


def default_target(study_dir: Path) -> Path:
    return study_dir.parent / f"{study_dir.name}{SUFFIX}"


def _target(study_dir: Path, out: Path | None) -> Path:
    target = default_target(study_dir) if out is None else out.expanduser()
    if target.is_dir():
        target = target / default_target(study_dir).name
    if not target.parent.is_dir():
        raise ConfigError(
            f"the folder {target.parent} does not exist",
            source=str(out),
            fix="create it first, or give another path",
        )
    return target.absolute()


def _info(study_dir: Path, manifest: Mapping[str, Any], files: list[PackedFile], raw: bool,
          source: StudySource, notes: list[str]) -> PackInfo:  # fmt: skip
    env = study_environment(study_dir)
    images = {b: PackedImage(image=_str(e.image.value), digest=_str(e.image_digest.value))
              for b, e in env.backends.items()}  # fmt: skip
    return PackInfo(
        created_at=utc_now(),
        study_id=str(manifest.get("study_id") or study_dir.name),
        design_hash=str(manifest.get("design_hash") or ""),
        images=images,
        harness_version=_str(env.harness_version.value),
        engine_versions={b: _str(e.engine_version.value) for b, e in env.backends.items()},
        environment=env,
        files=files,
        raw=raw,
        study_file=source,
        notes=notes,
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def pack(study_dir: Path, out: Path | None = None, raw: bool = True, *,
         progress: bool = True) -> Path:  # fmt: skip
    """Write the study in `study_dir` as one .tar.gz (`out`, an existing folder to write it
    into, or by default `<study_dir.name>.llem-pack.tar.gz` beside the study) and return its
    path. `raw=False` leaves out the per-run Parquet files and container.log. Refuses, with
    the file named, when a file holds a secret; writes nothing then."""
    study_dir = study_dir.expanduser().resolve()
    sd = StudyDir(study_dir)
    if not sd.manifest.is_file():
        raise ConfigError(
            f"{study_dir} is not a study's results folder: it has no {sd.manifest.name}",
            source=str(study_dir),
            fix="give the folder `llem-docker run` wrote (<results>/<study>_<time>)",
        )
    target, top = _target(study_dir, out), study_dir.name
    manifest = read_json(sd.manifest)
    study_yaml, source = _study_source(sd, manifest)
    members = _members(sd, manifest, study_yaml, raw)
    report, why = _report(study_dir)
    members += [Member(REPORT_FILE, None, report)] if report is not None else []
    secrets, total = Secrets.from_env(os.environ), sum(m.size() for m in members)
    with _progress(2 * total, progress) as bar:
        task = bar.add_task(f"packing {top}", total=2 * total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        files = [_check(m, top, secrets, advance) for m in members]
        info = _info(study_dir, manifest, files, raw, source, [why] if why else [])
        head = Member(PACK_FILE, None, info.model_dump_json(indent=2).encode() + b"\n")
        _check(head, top, secrets, lambda n: None)
        _write_archive(target, top, [(head, None), *zip(members, files, strict=True)], advance)
    return target


def _write_archive(target: Path, top: str, items: list[tuple[Member, PackedFile | None]],
                   advance: Any) -> None:  # fmt: skip
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
            for m, f in items:
                entry = f or PackedFile(path=m.name, bytes=len(m.data), sha256="")
                _write(tar, top, m, entry, advance)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
