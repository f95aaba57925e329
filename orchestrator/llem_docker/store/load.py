"""Reading a study's results back: `load_results(dir)` (public API), or several studies'
results at once, with a `study` column that tells them apart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llem_docker.errors import LlemError
from llem_docker.store.layout import RESULTS_FILE, StudyDir


class ResultsNotFound(LlemError):
    """The folder holds no results.parquet (bad input: exit code 2)."""

    exit_code = 2


def study_name(study_dir: Path) -> str:
    """The study's name from its study.json, else the folder's name."""
    try:
        name = json.loads(StudyDir(study_dir).study_json.read_text(encoding="utf-8"))["study_name"]
    except (OSError, ValueError, KeyError, TypeError):
        name = None
    return name if isinstance(name, str) and name else study_dir.name


def study_labels(dirs: Sequence[str | Path]) -> list[str]:
    """One label per study folder, to tell them apart when they are compared: the study's
    name; the folder's name where names collide (two runs of one study file); the path as
    given where folder names collide too."""
    paths = [Path(d) for d in dirs]
    labels = [study_name(p.expanduser()) for p in paths]
    for fallback in (lambda p: p.name, str):
        counts = {x: labels.count(x) for x in labels}
        labels = [fallback(p) if counts[x] > 1 else x for p, x in zip(paths, labels, strict=True)]
    return labels


def _read(results_dir: str | Path) -> Any:
    import pyarrow.parquet as pq

    path = Path(results_dir).expanduser() / RESULTS_FILE
    if not path.is_file():
        raise ResultsNotFound(
            f"{path} does not exist. Fix: give a study's results folder; if the study ran "
            f"but its summary is missing, `llem-docker collect {results_dir}` assembles it"
        )
    return pq.read_table(path)


def _concat(tables: list[Any]) -> Any:
    """One table from several studies' tables. Columns missing from a study (another swept
    key, an older schema) are null there; a column whose types disagree beyond int/float
    becomes text."""
    import pyarrow as pa

    types: dict[str, set[Any]] = {}
    for t in tables:
        for f in t.schema:
            if not pa.types.is_null(f.type):
                types.setdefault(f.name, set()).add(f.type)
    numeric = (pa.types.is_integer, pa.types.is_floating)
    mixed = {
        name
        for name, ts in types.items()
        if len(ts) > 1 and not all(any(ok(t) for ok in numeric) for t in ts)
    }
    out = []
    for t in tables:
        for name in mixed & set(t.column_names):
            i = t.column_names.index(name)
            t = t.set_column(i, name, t.column(name).cast(pa.string()))
        out.append(t.replace_schema_metadata(None))
    return pa.concat_tables(out, promote_options="permissive")


def load_results(results_dir: str | Path | Sequence[str | Path], *, as_pandas: bool = False) -> Any:
    """results.parquet of a study folder: a pyarrow Table (or a pandas DataFrame), one row per
    run; the columns are documented in docs/results.md.

    Given a list of study folders, their rows one after the other, with a first column
    `study` (the labels of `study_labels`) and the union of their columns."""
    if isinstance(results_dir, str | Path):
        table = _read(results_dir)
    else:
        import pyarrow as pa

        dirs = list(results_dir)
        if not dirs:
            raise LlemError("load_results got no study folder. Fix: give at least one")
        tables = []
        for label, d in zip(study_labels(dirs), dirs, strict=True):
            t = _read(d)
            tables.append(t.add_column(0, "study", pa.array([label] * t.num_rows, pa.string())))
        table = _concat(tables)
    if not as_pandas:
        return table
    try:
        return table.to_pandas()
    except ImportError as exc:
        raise LlemError(f"as_pandas needs pandas ({exc}). Fix: pip install pandas") from None
