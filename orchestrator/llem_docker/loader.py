"""Study file -> StudyConfig, with errors that name the file, the line, the key and the fix."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from llem_docker.errors import ConfigError
from llem_docker.secrets import check_no_secrets
from llem_docker.study import (
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
from llem_docker.yamlsrc import Document, Key, format_key, load_yaml
from llem_harness.config import BACKENDS, ExperimentConfig


def load_study(path: str | Path) -> StudyConfig:
    """Read, check and return a study file. Raises ConfigError on any bad input."""
    doc = load_yaml(Path(path))
    check_no_secrets(doc)
    return study_from_document(doc)


def study_from_document(doc: Document) -> StudyConfig:
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
    for key in data:
        if key not in STUDY_KEYS and key not in EXPERIMENT_FIELDS:
            _unknown(doc, (key,), [*STUDY_KEYS, *sorted(EXPERIMENT_FIELDS)])

    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not name.strip():
        _fail(doc, ("name",), "must be a non-empty string", "write e.g. `name: batch-size-effects`")

    execution = None
    if "execution" in data:
        raw = data["execution"] if data["execution"] is not None else {}
        try:
            execution = ExecutionConfig.model_validate(raw)
        except ValidationError as exc:
            _raise_pydantic(doc, exc, ("execution",))

    base = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    backends = _backends(doc, base.pop("backend", None))
    for key, value in base.items():
        if isinstance(value, list):
            _fail(
                doc,
                (key,),
                "a list here would be a sweep axis, but only `backend` may be one",
                f"move it under `sweep:` as `{key}: [...]`",
            )
    for section in BACKENDS:
        if section in base and backends and section not in backends:
            _fail(
                doc,
                (section,),
                f"options for `{section}`, which is not among this study's "
                f"backends ({', '.join(backends)})",
                f"add {section} to `backend:` or remove it",
            )

    axes = _axes(doc, data.get("sweep"), backends)
    experiments = _experiments(doc, data.get("experiments"))
    study = StudyConfig(
        name=name.strip(),
        base=base,
        backends=tuple(backends),
        axes=tuple(axes),
        experiments=tuple(experiments),
        execution=execution,
        source=str(doc.path),
    )
    _check_values(doc, study)
    if not backends and not experiments:
        _fail(
            doc,
            (),
            "the study expands to zero runs: no `backend:` and no `experiments:`",
            "add `backend: pytorch` (or a list) or at least one entry under `experiments:`",
        )
    return study


def _backends(doc: Document, raw: Any) -> list[str]:
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        _fail(
            doc,
            ("backend",),
            "empty list: the study would expand to zero runs",
            f"list at least one of {', '.join(BACKENDS)}",
        )
    seen: list[str] = []
    for i, b in enumerate(values):
        key: Key = ("backend", i) if isinstance(raw, list) else ("backend",)
        if b not in BACKENDS:
            _fail(doc, key, f"unknown backend `{b}`", f"use one of {', '.join(BACKENDS)}")
        if b in seen:
            _fail(doc, key, f"backend `{b}` is listed twice", "list each backend once")
        seen.append(b)
    return seen


def _axes(doc: Document, raw: Any, backends: list[str]) -> list[Axis]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        _fail(
            doc,
            ("sweep",),
            "must be a mapping of key -> list of values",
            "write e.g. `sweep: {batch_size: [1, 4, 8]}`",
        )
    if not backends:
        _fail(
            doc,
            ("sweep",),
            "a sweep needs a base `backend:`",
            "add `backend: pytorch` (or a list) at the top level",
        )
    axes = []
    for key, values in raw.items():
        key = str(key)
        parsed = parse_axis_key(key)
        if isinstance(parsed, str):
            hint = _suggest(key, _axis_names())
            _fail(
                doc,
                ("sweep", key),
                parsed,
                "use a field of ExperimentConfig or "
                "`<backend>.<option>`" + (f"; did you mean `{hint}`?" if hint else ""),
            )
        backend, path = parsed
        if backend is not None and backend not in backends:
            _fail(
                doc,
                ("sweep", key),
                f"scoped to `{backend}`, which is not among this study's "
                f"backends ({', '.join(backends)})",
                f"add {backend} to `backend:` or drop the axis",
            )
        if not isinstance(values, list):
            _fail(
                doc,
                ("sweep", key),
                "a sweep axis must be a list",
                f"write `{key}: [{values!r}]` or move it out of `sweep:`",
            )
        if not values:
            _fail(
                doc,
                ("sweep", key),
                "empty list: the study would expand to zero runs",
                "give at least one value, or remove the axis",
            )
        if len({repr(v) for v in values}) != len(values):
            _fail(doc, ("sweep", key), "the same value is listed twice", "list each value once")
        axes.append(Axis(key=key, backend=backend, path=path, values=tuple(values)))
    return axes


def _experiments(doc: Document, raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        _fail(
            doc,
            ("experiments",),
            "must be a list of mappings",
            "write `experiments:` followed by `- {backend: pytorch, batch_size: 1}` items",
        )
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            _fail(
                doc,
                ("experiments", i),
                "each experiment must be a mapping",
                "write `- {backend: pytorch, batch_size: 1}`",
            )
        for key in item:
            if key not in EXPERIMENT_FIELDS:
                _unknown(doc, ("experiments", i, str(key)), sorted(EXPERIMENT_FIELDS))
        out.append({str(k): v for k, v in item.items()})
    return out


def _check_values(doc: Document, study: StudyConfig) -> None:
    """Validate every sweep value on its own, then the base and each explicit experiment."""
    for axis in study.axes:
        probe = _first_point(study, axis.backend or study.backends[0])
        for i, value in enumerate(axis.values):
            point = dict(probe)
            set_path(point, axis.path, value)
            errors = _errors(point)
            for err in errors:
                if tuple(err["loc"][: len(axis.path)]) == axis.path:
                    _fail_pydantic(doc, err, ("sweep", axis.key, i), skip=len(axis.path))
    for name in study.backends:
        for err in _errors(_first_point(study, name)):
            if not any(tuple(err["loc"][: len(a.path)]) == a.path for a in study.axes):
                _fail_pydantic(doc, err, (), skip=0, backend=name)
    for i, exp in enumerate(study.experiments):
        backend = exp.get("backend") or (study.backends[0] if len(study.backends) == 1 else None)
        if backend is None:
            _fail(
                doc,
                ("experiments", i),
                f"no `backend:` and the study's base has {'several' if study.backends else 'none'}",
                "add `backend: <name>` to it",
            )
        data = deep_merge(study.base_for(str(backend)), exp) if backend in BACKENDS else exp
        for err in _errors(data):
            in_exp = bool(err["loc"]) and str(err["loc"][0]) in exp
            prefix: Key = ("experiments", i) if in_exp or not err["loc"] else ()
            _fail_pydantic(doc, err, prefix, skip=0)


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


def _raise_pydantic(doc: Document, exc: ValidationError, prefix: Key) -> NoReturn:
    _fail_pydantic(doc, exc.errors()[0], prefix, skip=0)


def _fail_pydantic(
    doc: Document, err: ErrorDetails, prefix: Key, *, skip: int, backend: str | None = None
) -> NoReturn:
    loc: Key = tuple(err["loc"][skip:])
    key = (*prefix, *loc)
    message, fix = describe_error(err)
    if err["type"] == "missing" and not prefix:
        message = f"required field `{format_key(loc)}` is missing"
        fix = f"add `{format_key(loc)}: ...` to the study's top level"
    if backend and not loc:
        message = f"for backend {backend}: {message}"
    _fail(doc, key, message, fix)


def describe_error(err: ErrorDetails) -> tuple[str, str]:
    """Turn one pydantic error into (message, fix)."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown key", "remove it or correct its spelling"
    if kind == "missing":
        return "required key is missing", "add it"
    if kind == "literal_error":
        return f"{got!r} is not allowed: {msg.lower()}", f"use one of {ctx.get('expected', '')}"
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx and kind.startswith(("greater", "less")):
            return f"{got!r} is out of range ({msg.lower()})", f"use a value {word} {ctx[bound]}"
    if kind.endswith(("_type", "_parsing")):
        return (
            f"wrong type: {msg.lower()} (got {type(got).__name__} {got!r})",
            "write a value of the expected type",
        )
    if kind == "string_too_short":
        return "must not be empty", "give a non-empty value"
    return msg, "correct the value"


def _unknown(doc: Document, key: Key, valid: list[str]) -> NoReturn:
    name = str(key[-1])
    if name in MISPLACED:
        _fail(
            doc, key, "a study file describes WHAT to measure, not how to run it", MISPLACED[name]
        )
    hint = _suggest(name, valid)
    fix = f"did you mean `{hint}`?" if hint else "remove it; see the study grammar in the README"
    _fail(doc, key, "unknown key", fix)


def _suggest(name: str, valid: list[str]) -> str | None:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.7)
    return match[0] if match else None


def _axis_names() -> list[str]:
    from llem_harness.config import BACKEND_OPTIONS

    names = sorted(EXPERIMENT_FIELDS)
    for b, model in BACKEND_OPTIONS.items():
        names += [f"{b}.{f}" for f in model.model_fields]
    return names


def _fail(doc: Document, key: Key, message: str, fix: str) -> NoReturn:
    raise ConfigError(
        message, source=doc.path, key=format_key(key) or None, line=doc.line(key), fix=fix
    )
