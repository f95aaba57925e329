"""An arrival trace for the serving scenario (`serving.arrival: trace`, docs/serving.md): one
request per record, with its timestamp and optionally its input and output token counts, as
published traces give them (BurstGPT's CSV, Mooncake's JSONL); input lengths are not read
(the prompts are the study's dataset). The standard library only.

A `.csv` file is read with its header row; any other is JSON Lines (one object a line, blank
lines skipped). Offsets count from the first timestamp, in seconds, divided by the rate
factor `scale` (2.0 replays twice as fast)."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem_harness.contract_files import jsonl_values

TIME_KEYS = ("timestamp", "Timestamp", "time", "arrival_s")
OUTPUT_KEYS = ("output_tokens", "output_length", "Response tokens")
UNITS = {"s": 1.0, "ms": 1e-3}


@dataclass(frozen=True)
class Trace:
    offsets: list[float]  # seconds from the first request, scaled, non-decreasing
    output_tokens: list[int] | None  # each request's output length, when the trace gives it


def read_trace(path: str | Path, scale: float = 1.0, unit: str = "s") -> Trace:
    """The trace at `path`; a ValueError naming the file and the line for a bad one."""
    path = Path(path)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"trace scale must be a finite number above 0, not {scale}")
    if unit not in UNITS:
        raise ValueError(f"trace unit must be one of {', '.join(UNITS)}, not {unit!r}")
    times: list[float] = []
    lengths: list[int] = []
    has_lengths: bool | None = None
    for line, record in _records(path):
        where = f"trace {path}, line {line}"
        key = _first(record, TIME_KEYS)
        if key is None:
            raise ValueError(f"{where}: no timestamp; name it one of {', '.join(TIME_KEYS)}")
        t = _number(record[key], f"{where}: timestamp")
        if t < 0:
            raise ValueError(f"{where}: timestamp {t:g} is negative")
        if times and t < times[-1]:
            raise ValueError(
                f"{where}: timestamp {t:g} is earlier than the line before's ({times[-1]:g}); "
                "sort the trace by time"
            )
        times.append(t)
        out = _first(record, OUTPUT_KEYS)
        if has_lengths is None:
            has_lengths = out is not None
        elif has_lengths != (out is not None):
            raise ValueError(
                f"{where}: an output length on some records only; give one on every record "
                f"({', '.join(OUTPUT_KEYS)}) or on none"
            )
        if out is not None:
            lengths.append(_length(record[out], f"{where}: {out}"))
    if not times:
        raise ValueError(f"trace {path} has no requests")
    factor = UNITS[unit] / scale
    return Trace([(t - times[0]) * factor for t in times], lengths if has_lengths else None)


def _records(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) for each request of the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"trace {path} cannot be read: {exc}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = reader.fieldnames or []
        if fields and not set(fields) & set(TIME_KEYS):
            raise ValueError(
                f"trace {path}, line 1: no timestamp column; name it one of {', '.join(TIME_KEYS)}"
            )
        for row in reader:
            yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
        return
    for n, obj in jsonl_values(text.splitlines(), f"trace {path}"):
        if not isinstance(obj, dict):
            raise ValueError(f"trace {path}, line {n}: not a JSON object")
        yield n, obj


def _first(record: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in record and record[k] is not None), None)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} {value!r} is not a finite number")
    return number


def _length(value: Any, what: str) -> int:
    number = _number(value, what)
    if number < 0 or number != int(number):
        raise ValueError(f"{what} {value!r} is not a whole number of tokens")
    return int(number)
