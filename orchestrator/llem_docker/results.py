"""Reading a study's results back: `load_results(dir)` (public API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem_docker.errors import LlemError
from llem_docker.study_result import RESULTS_FILE


class ResultsNotFound(LlemError):
    """The folder holds no results.parquet (bad input: exit code 2)."""

    exit_code = 2


def load_results(results_dir: str | Path, *, as_pandas: bool = False) -> Any:
    """results.parquet of a study folder: a pyarrow Table (or a pandas DataFrame), one row per
    run; the columns are documented in docs/results.md."""
    import pyarrow.parquet as pq

    path = Path(results_dir).expanduser() / RESULTS_FILE
    if not path.is_file():
        raise ResultsNotFound(
            f"{path} does not exist. Fix: give a study's results folder; if the study ran "
            f"but its summary is missing, `llem-docker collect {results_dir}` assembles it"
        )
    table = pq.read_table(path)
    if not as_pandas:
        return table
    try:
        return table.to_pandas()
    except ImportError as exc:
        raise LlemError(f"as_pandas needs pandas ({exc}). Fix: pip install pandas") from None
