"""A small Parquet writer, so that the images need no pyarrow (about 100 MB) to write the
harness's tables: timeseries.parquet, requests.parquet, responses.parquet and
engine_metrics.parquet.

It writes what those need and nothing more: flat columns of int32, int64, float64 and UTF-8
strings (BYTE_ARRAY, converted type UTF8), nulls allowed, PLAIN values, definition levels in
the RLE hybrid encoding, no compression, one data page per column, one row group. The file is
standard Parquet (format 1.0, data page v1; tests/harness/test_parquet_writer.py reads every
shape back through pyarrow). The metadata is Thrift's compact protocol, written by hand below
(parquet.thrift's field ids are in the comments). Readers stay with pyarrow on the host, which
always has it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"PAR1"
_TYPES = {"int32": (1, "<i"), "int64": (2, "<q"), "double": (5, "<d"), "string": (6, "")}
_UTF8 = 0  # ConvertedType.UTF8, for the string columns
_PLAIN, _RLE = 0, 3
# Thrift compact protocol type ids
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # int32 | int64 | double | string
    values: Sequence[int | float | str | None]
    nullable: bool = True


class _Thrift:
    """Thrift compact protocol, just the parts Parquet's metadata uses."""

    def __init__(self) -> None:
        self.out = bytearray()
        self._last = [0]  # last field id, per open struct

    def varint(self, n: int) -> None:
        while True:
            byte, n = n & 0x7F, n >> 7
            if n:
                self.out.append(byte | 0x80)
            else:
                self.out.append(byte)
                return

    def _zigzag(self, n: int) -> int:
        return (n << 1) ^ (n >> 63)

    def field(self, fid: int, ctype: int) -> None:
        delta = fid - self._last[-1]
        if 0 < delta <= 15:
            self.out.append(delta << 4 | ctype)
        else:
            self.out.append(ctype)
            self.varint(self._zigzag(fid))
        self._last[-1] = fid

    def i32(self, fid: int, value: int) -> None:
        self.field(fid, _I32)
        self.varint(self._zigzag(value))

    def i64(self, fid: int, value: int) -> None:
        self.field(fid, _I64)
        self.varint(self._zigzag(value))

    def string(self, fid: int, value: str) -> None:
        self.field(fid, _BINARY)
        self._bytes(value.encode())

    def _bytes(self, data: bytes) -> None:
        self.varint(len(data))
        self.out += data

    def list_header(self, fid: int, etype: int, size: int) -> None:
        self.field(fid, _LIST)
        if size < 15:
            self.out.append(size << 4 | etype)
        else:
            self.out.append(0xF0 | etype)
            self.varint(size)

    def i32_list(self, fid: int, values: Sequence[int]) -> None:
        self.list_header(fid, _I32, len(values))
        for v in values:
            self.varint(self._zigzag(v))

    def string_list(self, fid: int, values: Sequence[str]) -> None:
        self.list_header(fid, _BINARY, len(values))
        for v in values:
            self._bytes(v.encode())

    def begin(self, fid: int | None = None) -> None:
        """Open a struct: a field (fid), a list element (None), or the top level."""
        if fid is not None:
            self.field(fid, _STRUCT)
        self._last.append(0)

    def end(self) -> None:
        self.out.append(0)  # stop
        self._last.pop()


def _levels(present: list[bool]) -> bytes:
    """Definition levels (0 null, 1 present) as RLE runs of the hybrid encoding, bit width 1,
    prefixed with their length as data page v1 wants."""
    t = _Thrift()
    i = 0
    while i < len(present):
        j = i
        while j < len(present) and present[j] == present[i]:
            j += 1
        t.varint((j - i) << 1)  # an RLE run: (count << 1), then the value in one byte
        t.out.append(1 if present[i] else 0)
        i = j
    return struct.pack("<i", len(t.out)) + bytes(t.out)


def _page(col: Column) -> tuple[bytes, int]:
    """One data page (header + body) for a column, and its value count."""
    _, fmt = _TYPES[col.type]
    present = [v is not None for v in col.values]
    if not col.nullable and not all(present):
        raise ValueError(f"column {col.name!r} is not nullable but holds a null")
    values = [v for v in col.values if v is not None]
    if col.type != "double" and any(isinstance(v, float) and math.isnan(v) for v in values):
        raise ValueError(f"column {col.name!r} is integer but holds NaN")
    body = (_levels(present) if col.nullable else b"") + b"".join(_plain(col, fmt, values))
    head = _Thrift()
    head.begin()
    head.i32(1, 0)  # type: DATA_PAGE
    head.i32(2, len(body))  # uncompressed_page_size
    head.i32(3, len(body))  # compressed_page_size
    head.begin(5)  # data_page_header
    head.i32(1, len(col.values))  # num_values (nulls included)
    head.i32(2, _PLAIN)  # encoding
    head.i32(3, _RLE)  # definition_level_encoding
    head.i32(4, _RLE)  # repetition_level_encoding
    head.end()
    head.end()
    return bytes(head.out) + body, len(col.values)


def _plain(col: Column, fmt: str, values: Sequence[int | float | str]) -> list[bytes]:
    """PLAIN values: fixed-width numbers, or a string's 4-byte length and its UTF-8 bytes."""
    if col.type != "string":
        return [struct.pack(fmt, v) for v in values]
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"column {col.name!r} is a string column but holds a non-string")
    encoded = [str(v).encode("utf-8") for v in values]
    return [struct.pack("<i", len(b)) + b for b in encoded]


def write_parquet(path: Path, columns: Sequence[Column], *, created_by: str) -> int:
    """Write `columns` (all the same length) to `path`; return the row count."""
    rows = len(columns[0].values) if columns else 0
    if any(len(c.values) != rows for c in columns):
        raise ValueError("columns of different lengths")
    data = bytearray(MAGIC)
    chunks: list[tuple[Column, int, int]] = []  # column, page offset, page size
    if rows:
        for col in columns:
            page, _ = _page(col)
            chunks.append((col, len(data), len(page)))
            data += page
    meta = _Thrift()
    meta.begin()
    meta.i32(1, 1)  # version
    meta.list_header(2, _STRUCT, len(columns) + 1)  # schema: the root, then each column
    meta.begin()
    meta.string(4, "schema")
    meta.i32(5, len(columns))  # num_children
    meta.end()
    for col in columns:
        meta.begin()
        meta.i32(1, _TYPES[col.type][0])  # type
        meta.i32(3, 1 if col.nullable else 0)  # repetition_type: OPTIONAL | REQUIRED
        meta.string(4, col.name)
        if col.type == "string":
            meta.i32(6, _UTF8)  # converted_type
        meta.end()
    meta.i64(3, rows)  # num_rows
    meta.list_header(4, _STRUCT, 1 if rows else 0)  # row_groups
    if rows:
        meta.begin()
        meta.list_header(1, _STRUCT, len(chunks))  # columns
        for col, offset, size in chunks:
            meta.begin()
            meta.i64(2, offset)  # file_offset
            meta.begin(3)  # meta_data
            meta.i32(1, _TYPES[col.type][0])  # type
            meta.i32_list(2, [_PLAIN, _RLE])  # encodings
            meta.string_list(3, [col.name])  # path_in_schema
            meta.i32(4, 0)  # codec: UNCOMPRESSED
            meta.i64(5, rows)  # num_values
            meta.i64(6, size)  # total_uncompressed_size
            meta.i64(7, size)  # total_compressed_size
            meta.i64(9, offset)  # data_page_offset
            meta.end()
            meta.end()
        meta.i64(2, sum(size for _, _, size in chunks))  # total_byte_size
        meta.i64(3, rows)  # num_rows
        meta.end()
    meta.string(6, created_by)
    meta.end()
    data += meta.out
    data += struct.pack("<i", len(meta.out)) + MAGIC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return rows
