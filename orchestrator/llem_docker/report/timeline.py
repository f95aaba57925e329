"""The engine's load under power_timeline.png's power trace (report/plots.py).

A run of result schema 1.10 or later has an `engine_metrics` block in result.json; where the
engine's load could be rebuilt from the requests' times, its `file` names
engine_metrics.parquet in the run's folder: `running`, `waiting`, `kv_cache_tokens` and
`kv_cache_usage` (a share of the cache's capacity, null where that is unknown) at instants
`t_s` on the power timeseries' own clock (seconds since the meter started), so both panels
share one x axis. A static-batch engine (pytorch) has the block but no file: its batch as
configured is drawn flat over the measured window instead. Without the block (older results)
or where a file cannot be read, `read_load` gives None and the figure keeps its one panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem_docker.report.fmt import num
from llem_harness.host_api import ENGINE_METRICS_FILE  # the block's own `file` comes first

STATIC_NOTE = "static batch as configured"


@dataclass(frozen=True)
class EngineLoad:
    """What the engine panel draws: a timeline, or (`static`) the configured batch."""

    limit: int | None  # result.json engine_metrics.concurrency_limit
    t: list[float]
    running: list[float]
    waiting: list[float]
    kv_pct: list[float | None] | None  # KV-cache use in %, None where every row is null
    static: float | None = None  # the static batch's mean running, when there is no file


def _limit(block: dict[str, Any]) -> int | None:
    value = block.get("concurrency_limit")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_file(path: Path, limit: int | None) -> EngineLoad | None:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
        pts = sorted(
            (float(r["t_s"]), float(r["running"]), float(r["waiting"]), r.get("kv_cache_usage"))
            for r in rows
            if r.get("t_s") is not None and r.get("running") is not None
            and r.get("waiting") is not None
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):  # pyarrow's errors are among these
        return None
    if not pts:
        return None
    kv = [None if u is None else 100.0 * float(u) for *_, u in pts]
    return EngineLoad(
        limit=limit,
        t=[p[0] for p in pts],
        running=[p[1] for p in pts],
        waiting=[p[2] for p in pts],
        kv_pct=kv if any(u is not None for u in kv) else None,
    )


def read_load(run_dir: Path, result: Any) -> EngineLoad | None:
    """The run's engine load for the figure, or None: no `engine_metrics` block and no file,
    a file named but missing or unreadable, or a block with neither a timeline nor a batch."""
    block = result.get("engine_metrics") if isinstance(result, dict) else None
    if not isinstance(block, dict):  # an older result: the file alone, if there is one
        path = run_dir / ENGINE_METRICS_FILE
        return _read_file(path, None) if path.is_file() else None
    name = block.get("file")
    if isinstance(name, str) and name:  # the name only: never outside the run's folder
        return _read_file(run_dir / Path(name).name, _limit(block))
    static = block.get("mean_running")  # no timeline: a static batch as configured
    if isinstance(static, int | float) and not isinstance(static, bool):
        return EngineLoad(limit=_limit(block), t=[], running=[], waiting=[], kv_pct=None,
                          static=float(static))  # fmt: skip
    return None


def _timeline(ax: Any, load: EngineLoad) -> None:
    ax.step(load.t, load.running, where="post", color="tab:purple", linewidth=1.2,
            label="running (decoding)")  # fmt: skip
    ax.step(load.t, load.waiting, where="post", color="tab:purple", alpha=0.4, linewidth=1,
            label="waiting (before the first token)")  # fmt: skip


def _static(ax: Any, load: EngineLoad, span: tuple[float, float]) -> None:
    assert load.static is not None
    ax.hlines(load.static, *span, color="tab:purple", linewidth=1.5,
              label=f"running ({STATIC_NOTE}, {num(load.static)})")  # fmt: skip
    ax.text(0.01, 0.04, STATIC_NOTE, transform=ax.transAxes, va="bottom", fontsize="small",
            color="dimgray")  # fmt: skip


def draw_load(ax: Any, load: EngineLoad, span: tuple[float, float]) -> Any | None:
    """The engine panel on `ax`: requests against the left axis, the engine's limit dashed,
    KV-cache use (%) against a right axis (returned, or None where there is none). `span`:
    the measured window, where a static batch is drawn."""
    if load.static is None:
        _timeline(ax, load)
    else:
        _static(ax, load, span)
    if load.limit is not None:
        ax.axhline(load.limit, linestyle="--", color="gray", linewidth=1,
                   label=f"engine limit ({load.limit})")  # fmt: skip
    top = max([*load.running, *load.waiting, load.static or 0.0, load.limit or 0.0, 1.0])
    ax.set_ylim(0, top * 1.45)  # room above the limit's line for the legend
    ax.set_ylabel("requests")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    right = None
    if load.kv_pct is not None:
        right = ax.twinx()
        kv = [float("nan") if u is None else u for u in load.kv_pct]
        right.plot(load.t, kv, color="tab:brown", linewidth=1, label="KV cache use (estimate)")
        right.set_ylim(0, max(100.0, *(u for u in load.kv_pct if u is not None)) * 1.45)
        right.set_ylabel("KV cache (%)")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    # on the right axis where there is one, which is drawn over the left one
    (right or ax).legend(handles, labels, fontsize="x-small", loc="upper left", ncols=2)
    return right
