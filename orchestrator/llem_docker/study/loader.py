"""Study file -> StudyConfig, with errors that name the file, the line, the key and the fix."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from llem_docker.config.secrets import check_no_secrets
from llem_docker.config.yamlsrc import Document, Key, format_key, load_yaml
from llem_docker.errors import ConfigError, ConfigErrors, describe_error, short_repr
from llem_docker.study.model import (
    EXPERIMENT_FIELDS,
    MISPLACED,
    STUDY_KEYS,
    Axis,
    ExecutionConfig,
    StudyConfig,
    deep_merge,
    parse_axis_key,
    set_path,
)
from llem_harness.host_api import BACKENDS, ExperimentConfig


def load_study(path: str | Path) -> StudyConfig:
    """Read, check and return a study file. Raises ConfigError on any bad input."""
    doc = load_yaml(Path(path))
    check_no_secrets(doc)
    return study_from_document(doc)


MAX_REPORTED = 20


class _TooMany(Exception):
    pass


class Problems:
    """Every problem found in one document, reported together (the first MAX_REPORTED),
    at most one per key path."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.items: list[ConfigError] = []
        self.keys: set[str] = set()

    def add(self, key: Key, message: str, fix: str) -> None:
        name = format_key(key)
        if name in self.keys or any(
            name.startswith(f"{k}.") or name.startswith(f"{k}[") for k in self.keys if k
        ):
            return  # one problem per key path, and none below a key already reported
        self.keys.add(name)
        self.items.append(
            ConfigError(
                message, source=self.doc.path, key=name or None, line=self.doc.line(key), fix=fix
            )
        )
        if len(self.items) >= MAX_REPORTED:
            raise _TooMany

    def raise_if_any(self, *, more: bool = False) -> None:
        if self.items:
            raise ConfigErrors(self.items, more=more) from None


def study_from_document(doc: Document) -> StudyConfig:
    """Check a parsed study; raise ConfigErrors listing every problem found."""
    problems = Problems(doc)
    try:
        study = _study(doc, problems)
    except _TooMany:
        problems.raise_if_any(more=True)
    problems.raise_if_any()
    return study


def _study(doc: Document, problems: Problems) -> StudyConfig:
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(
            doc,
            (),
            f"the top level must be a mapping of keys, not {type(data).__name__}",
            "start the file with `model: ...` and `backend: ...`",
        )
    data = {str(k): v for k, v in data.items()}
    for key in list(data):
        if key not in STUDY_KEYS and key not in EXPERIMENT_FIELDS:
            _unknown(problems, (key,), [*STUDY_KEYS, *sorted(EXPERIMENT_FIELDS)])
            del data[key]

    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not name.strip():
        problems.add(
            ("name",), "must be a non-empty string", "write e.g. `name: batch-size-effects`"
        )
        name = doc.path.stem or "study"

    execution = None
    if "execution" in data:
        raw = data["execution"] if data["execution"] is not None else {}
        try:
            execution = ExecutionConfig.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                _add_pydantic(problems, err, ("execution",), skip=0)

    base = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    backends = _backends(problems, base.pop("backend", None))
    for key, value in list(base.items()):
        if isinstance(value, list):
            problems.add(
                (key,),
                "a list here would be a sweep axis, but only `backend` may be one",
                f"move it under `sweep:` as `{key}: [...]`",
            )
            del base[key]
    for section in BACKENDS:
        if section in base and backends and section not in backends:
            problems.add(
                (section,),
                f"options for `{section}`, which is not among this study's "
                f"backends ({', '.join(backends)})",
                f"add {section} to `backend:` or remove it",
            )

    axes = _axes(problems, data.get("sweep"), backends)
    experiments = _experiments(problems, data.get("experiments"))
    study = StudyConfig(
        name=name.strip(),
        base=base,
        backends=tuple(backends),
        axes=tuple(axes),
        experiments=tuple(experiments),
        execution=execution,
        source=str(doc.path),
    )
    _check_values(problems, study)
    if not backends and not experiments and not problems.items:
        problems.add(
            (),
            "the study expands to zero runs: no `backend:` and no `experiments:`",
            f"add `backend: {BACKENDS[0]}` (or a list) or at least one entry under `experiments:`",
        )
    return study


def _backends(problems: Problems, raw: Any) -> list[str]:
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        problems.add(
            ("backend",),
            "empty list: the study would expand to zero runs",
            f"list at least one of {', '.join(BACKENDS)}",
        )
    seen: list[str] = []
    for i, b in enumerate(values):
        key: Key = ("backend", i) if isinstance(raw, list) else ("backend",)
        if b not in BACKENDS:
            problems.add(key, f"unknown backend `{b}`", f"use one of {', '.join(BACKENDS)}")
        elif b in seen:
            problems.add(key, f"backend `{b}` is listed twice", "list each backend once")
        else:
            seen.append(b)
    return seen


def _axes(problems: Problems, raw: Any, backends: list[str]) -> list[Axis]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.add(
            ("sweep",),
            "must be a mapping of key -> list of values",
            "write e.g. `sweep: {batch_size: [1, 4, 8]}`",
        )
        return []
    if not backends:
        problems.add(
            ("sweep",),
            "a sweep needs a base `backend:`",
            f"add `backend: {BACKENDS[0]}` (or a list) at the top level",
        )
        return []
    axes = []
    for key, values in raw.items():
        key = str(key)
        axis = _axis(problems, key, values, backends)
        if axis is not None:
            axes.append(axis)
    return axes


def _axis(problems: Problems, key: str, values: Any, backends: list[str]) -> Axis | None:
    parsed = parse_axis_key(key)
    where: Key = ("sweep", key)
    if isinstance(parsed, str):
        hint = _suggest(key, _axis_names())
        problems.add(
            where,
            parsed,
            "use a field of ExperimentConfig or "
            "`<backend>.<option>`" + (f"; did you mean `{hint}`?" if hint else ""),
        )
        return None
    backend, path = parsed
    if backend is not None and backend not in backends:
        problems.add(
            where,
            f"scoped to `{backend}`, which is not among this study's "
            f"backends ({', '.join(backends)})",
            f"add {backend} to `backend:` or drop the axis",
        )
    elif not isinstance(values, list):
        problems.add(
            where,
            "a sweep axis must be a list",
            f"write `{key}: [{short_repr(values)}]` or move it out of `sweep:`",
        )
    elif not values:
        problems.add(
            where,
            "empty list: the study would expand to zero runs",
            "give at least one value, or remove the axis",
        )
    elif len({repr(v) for v in values}) != len(values):
        problems.add(where, "the same value is listed twice", "list each value once")
    else:  # YAML's .inf is a float infinity, which JSON cannot hold: the rate's "inf"
        values = ["inf" if isinstance(v, float) and math.isinf(v) and v > 0 else v for v in values]
        return Axis(key=key, backend=backend, path=path, values=tuple(values))
    return None


def _experiments(problems: Problems, raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(
            ("experiments",),
            "must be a list of mappings",
            f"write `experiments:` followed by `- {{backend: {BACKENDS[0]}, batch_size: 1}}` items",
        )
        return []
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.add(
                ("experiments", i),
                "each experiment must be a mapping",
                f"write `- {{backend: {BACKENDS[0]}, batch_size: 1}}`",
            )
            continue
        clean = {}
        for key, value in item.items():
            if key not in EXPERIMENT_FIELDS:
                _unknown(problems, ("experiments", i, str(key)), sorted(EXPERIMENT_FIELDS))
            else:
                clean[str(key)] = value
        out.append(clean)
    return out


def _check_values(problems: Problems, study: StudyConfig) -> None:
    """Validate every sweep value on its own, then the grid's base (when the study has a
    grid) and each listed experiment."""
    for axis in study.axes:
        probe = _first_point(study, axis.backend or study.backends[0])
        for i, value in enumerate(axis.values):
            point = dict(probe)
            set_path(point, axis.path, value)
            for err in _errors(point):
                if tuple(err["loc"][: len(axis.path)]) == axis.path:
                    _add_pydantic(problems, err, ("sweep", axis.key, i), skip=len(axis.path))
    if study.has_grid:
        for name in study.backends:
            for err in _errors(_first_point(study, name)):
                if not any(tuple(err["loc"][: len(a.path)]) == a.path for a in study.axes):
                    _add_pydantic(problems, err, (), skip=0, backend=name)
    for i, exp in enumerate(study.experiments):
        backend = exp.get("backend") or (study.backends[0] if len(study.backends) == 1 else None)
        if backend is None:
            problems.add(
                ("experiments", i),
                f"no `backend:` and the study's base has {'several' if study.backends else 'none'}",
                "add `backend: <name>` to it",
            )
            continue
        data = deep_merge(study.base_for(str(backend)), exp) if backend in BACKENDS else exp
        for err in _errors(data):
            in_exp = bool(err["loc"]) and str(err["loc"][0]) in exp
            prefix: Key = ("experiments", i) if in_exp or not err["loc"] else ()
            if err["type"] == "missing" and not in_exp:
                prefix = ("experiments", i)  # a listed experiment lacks a field nobody gave
            _add_pydantic(problems, err, prefix, skip=0)


def _first_point(study: StudyConfig, backend: str) -> dict[str, Any]:
    data = study.base_for(backend)
    for axis in study.axes_for(backend):
        set_path(data, axis.path, axis.values[0])
    return data


def _errors(data: dict[str, Any]) -> list[ErrorDetails]:
    try:
        ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        return exc.errors()
    return []


def _add_pydantic(
    problems: Problems, err: ErrorDetails, prefix: Key, *, skip: int, backend: str | None = None
) -> None:
    loc: Key = tuple(err["loc"][skip:])
    key = (*prefix, *loc)
    message, fix = describe_error(err)
    if err["type"] == "missing" and not prefix:
        message = f"required field `{format_key(loc)}` is missing"
        fix = f"add `{format_key(loc)}: ...` to the study's top level"
    elif err["type"] == "missing" and prefix[:1] == ("experiments",):
        message = f"required field `{format_key(loc)}` is missing"
        fix = f"add `{format_key(loc)}: ...` to this experiment or to the study's top level"
    if backend and not loc:
        message = f"for backend {backend}: {message}"
    problems.add(key, message, fix)


def _unknown(problems: Problems, key: Key, valid: list[str]) -> None:
    name = str(key[-1])
    if name in MISPLACED:
        problems.add(
            key, "a study file describes WHAT to measure, not how to run it", MISPLACED[name]
        )
        return
    hint = _suggest(name, valid)
    fix = f"did you mean `{hint}`?" if hint else "remove it; see the study grammar in the README"
    problems.add(key, "unknown key", fix)


def _suggest(name: str, valid: list[str]) -> str | None:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.7)
    return match[0] if match else None


def _axis_names() -> list[str]:
    from llem_harness.host_api import ENGINES

    names = sorted(EXPERIMENT_FIELDS)
    for name, spec in ENGINES.items():
        names += [f"{name}.{f}" for f in spec.options.model_fields]
    return names


def _fail(doc: Document, key: Key, message: str, fix: str) -> NoReturn:
    raise ConfigError(
        message, source=doc.path, key=format_key(key) or None, line=doc.line(key), fix=fix
    )
