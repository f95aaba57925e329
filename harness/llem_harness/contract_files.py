"""The files of a run directory (the exchange contract's names), and the blocks of result.json
that point into the Parquet files beside it: `timeseries` (timeseries.parquet) and `requests`
(requests.parquet)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

EXPERIMENT_FILE = "experiment.json"
RESULT_FILE = "result.json"
RESPONSES_FILE = "responses.parquet"
ERROR_FILE = "error.json"
TIMESERIES_FILE = "timeseries.parquet"
REQUESTS_FILE = "requests.parquet"
LOG_FILE = "container.log"

REQUESTS_CLOCK = (
    "seconds since the measured window opened (timeseries t_s = timeseries.window_start_s + these)"
)


class StrictModel(BaseModel):
    """The base of every exchange-contract model: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid")


class TimeseriesSummary(StrictModel):
    """timeseries.parquet: its rows, the measured window on its clock (`t_s`, seconds since the
    meter started), and the power integral over that window (the check on the energy counter)."""

    file: str = TIMESERIES_FILE
    rows: int = 0
    power_integral_j: float | None = None
    window_start_s: float | None = None
    window_end_s: float | None = None


class RequestsFile(StrictModel):
    """requests.parquet: one row per request of the measured window (steady-state and serving
    runs); `clock` says what its times count from."""

    file: str = REQUESTS_FILE
    rows: int
    clock: str = REQUESTS_CLOCK


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file, or the whole new one, never a part."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old one, or the whole new one, never a part: a
    temporary file beside it, flushed to disk, renamed over it, the rename made durable."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def jsonl_values(lines: Iterable[str], where: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank JSON Lines line; a line that is not JSON is a
    ValueError naming `where` (the file) and the line. The datasets, quality's references and
    serving traces all read their JSONL through it."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}, line {lineno}: not JSON ({exc.msg})") from None
