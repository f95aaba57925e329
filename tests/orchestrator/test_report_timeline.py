"""power_timeline.png with the engine's load below the power trace (report/timeline.py):
a run folder built by hand (timeseries.parquet and engine_metrics.parquet written with
pyarrow, as the harness's own writer lays them out; result.json with the fields the figure
reads), then the figure's panels and lines checked on the matplotlib Figure itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_docker.report.plots import _power_timeline, power_figure
from llem_docker.report.timeline import STATIC_NOTE, read_load
from tests.orchestrator.test_report import png_size

WINDOW = (1.0, 5.0)
LIMIT = 256


def _timeseries(d: Path) -> None:
    t = [i / 10 for i in range(60)]
    table = pa.table({
        "t_s": pa.array(t, pa.float64()),
        "gpu_index": pa.array([0] * len(t), pa.int32()),
        "power_w": pa.array([80.0 + (200.0 if WINDOW[0] <= x <= WINDOW[1] else 0.0) for x in t],
                            pa.float64()),
    })  # fmt: skip
    pq.write_table(table, d / "timeseries.parquet")


def _engine_file(d: Path, *, kv: bool = True) -> None:
    t = [WINDOW[0] + i * 0.1 for i in range(41)]
    running = [min(i * 10, 200) for i in range(41)]
    usage = [r * 100 / 1_000_000 for r in running] if kv else [None] * len(t)
    table = pa.table({
        "t_s": pa.array(t, pa.float64()),
        "running": pa.array(running, pa.int32()),
        "waiting": pa.array([max(0, 40 - i * 2) for i in range(41)], pa.int32()),
        "kv_cache_tokens": pa.array([r * 100.0 for r in running], pa.float64()),
        "kv_cache_usage": pa.array(usage, pa.float64()),
    })  # fmt: skip
    pq.write_table(table, d / "engine_metrics.parquet")


def _run(tmp_path: Path, engine: dict[str, Any] | None) -> Path:
    d = tmp_path / "study_1" / "runs" / "0001"
    d.mkdir(parents=True)
    _timeseries(d)
    result: dict[str, Any] = {
        "energy": {"total_j": 800.0},
        "timeseries": {"window_start_s": WINDOW[0], "window_end_s": WINDOW[1]},
    }
    if engine is not None:
        result["engine_metrics"] = engine
    (d / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return d


def _block(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"source": "rebuilt from per-request times",
                            "concurrency_limit": LIMIT, "mean_running": 150.0,
                            "file": "engine_metrics.parquet", "rows": 41}  # fmt: skip
    return base | kw


def _labels(ax: Any) -> list[str]:
    return [str(line.get_label()) for line in ax.get_lines()]


def test_engine_panel_under_the_power(tmp_path: Path) -> None:
    d = _run(tmp_path, _block())
    _engine_file(d)
    out, problem = _power_timeline(d, tmp_path / "power_timeline.png", "0001")
    assert problem is None and out is not None and png_size(out) == (800, 500)
    fig, _ = power_figure(d, "0001")
    power, engine, kv = fig.axes  # two panels, the second with its right (KV) axis
    assert power.get_ylabel() == "power (W)" and engine.get_ylabel() == "requests"
    assert kv.get_ylabel() == "KV cache (%)" and kv.bbox.bounds == engine.bbox.bounds
    assert power.get_shared_x_axes().joined(power, engine)  # one clock
    assert power.get_position().y0 > engine.get_position().y0  # power above
    assert engine.get_xlabel() == "time since the meter started (s)"
    labels = _labels(engine)
    assert labels[:2] == ["running (decoding)", "waiting (before the first token)"]
    limit = next(ln for ln in engine.get_lines() if ln.get_label() == f"engine limit ({LIMIT})")
    assert list(limit.get_ydata()) == [LIMIT, LIMIT] and limit.get_linestyle() == "--"
    run_line = engine.get_lines()[0]
    assert max(run_line.get_ydata()) == 200 and min(run_line.get_xdata()) == WINDOW[0]
    (kv_line,) = kv.get_lines()
    assert max(kv_line.get_ydata()) == pytest.approx(2.0)  # 200 × 100 / 1e6, as %
    legend = [t.get_text() for t in kv.get_legend().get_texts()]  # drawn over both
    assert "KV cache use (estimate)" in legend and f"engine limit ({LIMIT})" in legend


def test_no_kv_axis_when_usage_is_all_null(tmp_path: Path) -> None:
    d = _run(tmp_path, _block(kv_cache_usage_mean=None))
    _engine_file(d, kv=False)
    fig, _ = power_figure(d, "0001")
    assert [ax.get_ylabel() for ax in fig.axes] == ["power (W)", "requests"]


def test_without_engine_metrics_one_panel(tmp_path: Path) -> None:
    d = _run(tmp_path, None)  # an older result: no block, no file
    out, problem = _power_timeline(d, tmp_path / "p.png", "0001")
    assert problem is None and out is not None and png_size(out) == (800, 500)
    fig, _ = power_figure(d, "0001")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "power (W)" and ax.get_xlabel() == "time since the meter started (s)"
    assert _labels(ax) == ["GPU 0"]


def test_static_batch_is_a_flat_line_over_the_window(tmp_path: Path) -> None:
    d = _run(tmp_path, _block(source="the static batch as configured", concurrency_limit=8,
                              mean_running=6.5, file=None, rows=0))  # fmt: skip
    out, _ = _power_timeline(d, tmp_path / "p.png", "0001")
    assert out is not None and out.stat().st_size > 10_000
    fig, _ = power_figure(d, "0001")
    _, engine = fig.axes  # no KV axis: a static batch has no shared cache to report
    flat = engine.collections[-1]  # hlines: a LineCollection, after the window's shading
    ((x0, y0), (x1, y1)) = flat.get_segments()[0]
    assert (x0, x1) == WINDOW and y0 == y1 == 6.5
    assert STATIC_NOTE in flat.get_label()
    assert any(t.get_text() == STATIC_NOTE for t in engine.texts)
    assert "engine limit (8)" in _labels(engine)


EMPTY = pa.table({"t_s": pa.array([], pa.float64()), "running": pa.array([], pa.int32()),
                  "waiting": pa.array([], pa.int32())})  # fmt: skip
DAMAGE = {
    "garbage": lambda p: p.write_bytes(b"not parquet"),
    "columns missing": lambda p: pq.write_table(pa.table({"t_s": [1.0]}), p),
    "no rows": lambda p: pq.write_table(EMPTY, p),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_unreadable_engine_file_keeps_one_panel(tmp_path: Path, damage: str) -> None:
    d = _run(tmp_path, _block())
    DAMAGE[damage](d / "engine_metrics.parquet")
    out, problem = _power_timeline(d, tmp_path / "p.png", "0001")
    assert problem is None and out is not None
    fig, _ = power_figure(d, "0001")
    assert len(fig.axes) == 1


def test_read_load_edges(tmp_path: Path) -> None:
    d = _run(tmp_path, None)
    _engine_file(d)  # a file the block does not name (or no block): still the timeline
    load = read_load(d, {})
    assert load is not None and load.limit is None and len(load.t) == 41
    outside = d.parent.parent / "engine_metrics.parquet"
    pq.write_table(pa.table({"t_s": [1.0], "running": [999], "waiting": [0]}), outside)
    away = {"engine_metrics": _block(file="../../engine_metrics.parquet")}
    load = read_load(d, away)  # the name only: the run's own file, never one outside
    assert load is not None and max(load.running) == 200 and load.limit == LIMIT
    (d / "engine_metrics.parquet").unlink()  # named by the block, but gone: no panel
    assert read_load(d, away) is None and read_load(d, {"engine_metrics": _block()}) is None
    assert read_load(tmp_path, {"engine_metrics": _block(file=None, mean_running=None)}) is None
    assert read_load(tmp_path, ["not", "a", "dict"]) is None
    bad = read_load(tmp_path, {"engine_metrics": _block(file=None, concurrency_limit="x")})
    assert bad is not None and bad.static == 150.0 and bad.limit is None


def test_no_limit_line_without_a_limit(tmp_path: Path) -> None:
    d = _run(tmp_path, _block(concurrency_limit=None))
    _engine_file(d)
    fig, _ = power_figure(d, "0001")
    assert not any(label.startswith("engine limit") for label in _labels(fig.axes[1]))
