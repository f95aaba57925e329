"""`reproduce`: rerun a packed (or any) study's plan here, as it was run there.

The original is a pack (pack.py; extracted by unpack.py) or a study folder. Its study file as
given (`study.yaml`) is staged in a folder of its own with every `.jsonl` dataset at the path
the study names, copied from the original runs' dataset copies (their SHA-256 checked), so
that every experiment config, and its config hash, is the original's: `compare` pairs points
by that hash. The execution is the manifest's (cycles, order, shuffle seed) and the validity
profile its own; the measurement settings (baseline, sampling interval, window, energy
backend, carbon intensity, PUE) are the original study's, whatever this machine's user config
says. A subset of points (`--points`, config-hash prefixes or point labels) and another
number of cycles (`--cycles`) may be asked for; the runs keep the original's ids.

Before anything runs, the environment of the original (envrecord.py) is set against this
machine's (envdiff.py): a different image digest refuses unless allowed, a different GPU
model or driver is a warning. The new study folder gets `reproduce.json` (the original's
identity, the difference, what was allowed), which `compare` reads into its verdict.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.prepare import RUN_DATASET
from llem_docker.review.envdiff import FieldDiff
from llem_docker.review.unpack import is_pack, read_pack
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest
from llem_docker.study.plan import StudyPlan

REPRODUCE_FILE = "reproduce.json"
REPRODUCE_SCHEMA = "1.0"
FIX_OLD = (
    "this study folder was made before study files were kept (study.yaml): give the study "
    "file it was run from with --study FILE"
)


@dataclass(frozen=True)
class Original:
    """The study being reproduced."""

    folder: Path  # its study folder (extracted from a pack, or as given)
    manifest: Manifest
    measurement: dict[str, Any]  # study.json's measurement settings
    study_file: Path  # the study file as given
    pack: Path | None  # the pack it came from


def open_original(path: Path, scratch: Path, study_file: Path | None = None) -> Original:
    """The original study at `path`: a pack (extracted under `scratch`) or a study folder."""
    pack = path if is_pack(path) else None
    folder = read_pack(path, scratch) if pack is not None else path
    sd = StudyDir(folder)
    if not sd.manifest.is_file():
        raise ConfigError(
            f"{path} is neither an llem-docker pack nor a study folder (no manifest.json)",
            source="PACK_OR_DIR",
            fix="give a pack `llem-docker pack` wrote, or a study's results folder",
        )
    source = study_file or sd.study_source
    if not source.is_file():
        raise ConfigError(f"{sd.study_source} does not exist", source="PACK_OR_DIR", fix=FIX_OLD)
    try:
        measurement = json.loads(sd.study_json.read_text(encoding="utf-8"))["measurement"]
    except (OSError, ValueError, KeyError, TypeError):
        measurement = {}  # an unfinished study has no study.json: this machine's settings
    return Original(folder, Manifest.read(folder), dict(measurement or {}), source, pack)


def adopt_settings(original: Original, settings: Settings) -> list[str]:
    """The original's measurement settings (study.json) and its thermal gaps (the manifest's
    first start), over this machine's user config; the gaps not with `--no-gaps`. Returns
    what was taken, for the plan's header."""
    for key, value in original.measurement.items():
        settings.overrides[f"measurement.{key}"] = value
        settings.sources[f"measurement.{key}"] = "the original study (study.json)"
    first, changed = original.manifest.first_gaps()
    if first is None:
        return ["thermal gaps: this machine's (the original's first start did not record "
                "its own: manifest before 1.5)"]  # fmt: skip
    if settings.no_gaps:
        return ["thermal gaps: none (--no-gaps, or the quick profile), where the original's "
                f"were {first.config_s:g} s and {first.cycle_s:g} s"]  # fmt: skip
    for key, value in (("config", first.config_s), ("cycle", first.cycle_s)):
        settings.overrides[f"execution.{key}_gap_seconds"] = value
        settings.sources[f"execution.{key}_gap_seconds"] = "the original study (manifest.json)"
    lines = [f"thermal gaps: the original's, {first.config_s:g} s between configs and "
             f"{first.cycle_s:g} s between cycles"]  # fmt: skip
    if changed:
        lines.append("  (its later starts (--resume) used others: manifest.json, thermal_gaps)")
    return lines


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stage(original: Original, into: Path, plan: StudyPlan) -> None:
    """Put each `.jsonl` dataset the plan names at its path under `into` (the staged study
    file's folder), from the original run that used it; an absolute path must already hold
    the same bytes."""
    for run in plan.runs:
        name = run.point.config.dataset
        if not name.endswith(".jsonl"):
            continue  # builtin, synthetic, hf: (read from this machine's hub cache)
        copy = StudyDir(original.folder).run(run.run_id).file(RUN_DATASET)
        target = Path(name) if Path(name).is_absolute() else into / name
        if not copy.is_file():
            continue  # a run that never started: another run of the point carries it
        if Path(name).is_absolute() or target.is_file():
            if not target.is_file() or sha256(target) != sha256(copy):
                raise ConfigError(
                    f"dataset `{name}` here is not the file the original run "
                    f"{run.run_id} read ({copy})",
                    source="dataset",
                    fix="give the original's dataset at that path, or rerun from a pack of "
                    "a study whose datasets are relative to its study file",
                )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copy, target)


def staged_study(original: Original, into: Path) -> Path:
    """The study file as given, copied to `into` with the original's shuffle seed set (the
    manifest's), so that a shuffled order comes out the same."""
    into.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(original.study_file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{original.study_file} is not a study", source="PACK_OR_DIR")
    execution = dict(data.get("execution") or {})
    execution["seed"] = original.manifest.execution.seed
    data["execution"] = execution
    path = into / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def choose_points(plan: StudyPlan, wanted: list[str] | None, cycles: int | None) -> StudyPlan:
    """The plan cut to the points asked for (config-hash prefixes of 6+ characters, or point
    labels as the report prints them) and to the first `cycles` cycles; run ids unchanged."""
    points = plan.points
    if wanted:

        def label(p: Any) -> str:
            values = ", ".join(f"{k}={v}" for k, v in p.swept.items())
            return f"{p.config.backend} {values}".strip()

        chosen = [p for p in points
                  if any((len(w) >= 6 and p.config_hash.startswith(w)) or w == label(p)
                         for w in wanted)]  # fmt: skip
        if not chosen:
            shown = "; ".join(f"{p.config_hash[:8]} ({label(p)})" for p in points)
            raise ConfigError(
                f"no point matches --points {','.join(wanted)}",
                source="--points",
                fix=f"give config-hash prefixes (6+ characters) or labels: {shown}",
            )
        points = tuple(chosen)
    keep = {p.config_hash for p in points}
    runs = tuple(
        r
        for r in plan.runs
        if r.point.config_hash in keep and (cycles is None or r.cycle <= cycles)
    )
    return replace(plan, points=points, runs=runs)


def write_record(
    study_dir: Path, original: Original, diffs: list[FieldDiff], allowed: bool
) -> None:
    """reproduce.json in the new study folder: what was reproduced, and how this machine
    differed from the original's."""
    record = {
        "schema_version": REPRODUCE_SCHEMA,
        "original": {
            "study_id": original.manifest.study_id,
            "design_hash": original.manifest.design_hash,
            "pack": str(original.pack) if original.pack else None,
            "pack_sha256": sha256(original.pack) if original.pack else None,
        },
        "allow_image_drift": allowed,
        "environment": [d.model_dump(mode="json") for d in diffs],
        "warnings": [f"{d.field}: {d.original!r} there, {d.current!r} here"
                     for d in diffs if d.severity == "warn" and d.status == "different"],
    }  # fmt: skip
    path = study_dir / REPRODUCE_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_record(study_dir: Path) -> dict[str, Any] | None:
    """A reproduced study's reproduce.json, or None for any other study."""
    try:
        data = json.loads((study_dir / REPRODUCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
