"""The harness's own Parquet writer, read back by pyarrow (which the images no longer carry)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_harness.parquet import Column, write_parquet


def test_roundtrip_through_pyarrow_with_nulls_and_every_type(tmp_path: Path) -> None:
    rng = random.Random(7)
    n = 1000  # several RLE runs and more than 15 of everything
    ints = [rng.randrange(-(2**31), 2**31) for _ in range(n)]
    bigs = [None if rng.random() < 0.3 else rng.randrange(-(2**62), 2**62) for _ in range(n)]
    floats = [None if rng.random() < 0.5 else rng.uniform(-1e9, 1e9) for _ in range(n)]
    path = tmp_path / "t.parquet"
    rows = write_parquet(
        path,
        [
            Column("i", "int32", ints, nullable=False),
            Column("big", "int64", bigs),
            Column("x", "double", floats),
            Column("nan", "double", [math.nan, 1.5] * (n // 2)),
        ],
        created_by="test",
    )
    table = pq.read_table(path)
    assert rows == table.num_rows == n
    assert table.schema.field("i").type == pa.int32() and not table.schema.field("i").nullable
    assert table.schema.field("big").type == pa.int64() and table.schema.field("big").nullable
    assert table.column("i").to_pylist() == ints
    assert table.column("big").to_pylist() == bigs
    assert table.column("x").to_pylist() == floats
    got = table.column("nan").to_pylist()
    assert math.isnan(got[0]) and got[1] == 1.5
    assert pq.ParquetFile(path).metadata.created_by == "test"


@pytest.mark.parametrize("values", [[], [None], [None] * 20, [1.0] * 20])
def test_edge_shapes(tmp_path: Path, values: list[float | None]) -> None:
    path = tmp_path / "e.parquet"
    write_parquet(path, [Column("v", "double", values)], created_by="test")
    table = pq.read_table(path)
    assert table.num_rows == len(values) and table.column("v").to_pylist() == values
    assert table.schema.field("v").type == pa.float64()


def test_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not nullable"):
        write_parquet(tmp_path / "a", [Column("v", "int32", [1, None], nullable=False)],
                      created_by="t")  # fmt: skip
    with pytest.raises(ValueError, match="different lengths"):
        write_parquet(
            tmp_path / "b",
            [Column("a", "double", [1.0]), Column("b", "double", [])],
            created_by="t",
        )


def test_string_columns_are_utf8_with_nulls(tmp_path: Path) -> None:
    """Response texts (for scoring answers beside energy) travel as UTF-8 strings."""
    texts = ["2 + 3 = 5", None, "", "Paris — la capitale", "ünïcödé " * 40]
    path = tmp_path / "s.parquet"
    write_parquet(
        path,
        [Column("n", "int32", [1, 2, 3, 4, 5], nullable=False), Column("text", "string", texts)],
        created_by="test",
    )
    table = pq.read_table(path)
    assert table.schema.field("text").type == pa.string()
    assert table.column("text").to_pylist() == texts
    with pytest.raises(ValueError, match="holds a non-string"):
        write_parquet(tmp_path / "x.parquet", [Column("t", "string", [1])], created_by="test")
