"""The `engine_metrics` block of result.json (schema 1.10): the engine's load during the
measured window, summarised, with its timeline in engine_metrics.parquet (engine_load.py)."""

from __future__ import annotations

from pydantic import Field

from llem_harness.contract_files import StrictModel

ENGINE_METRICS_FILE = "engine_metrics.parquet"
ENGINE_METRICS_CLOCK = "t_s: seconds since the meter started, as timeseries.parquet's t_s"


class EngineMetrics(StrictModel):
    """How loaded the engine was in the measured window. `source` says where the figures come
    from; a figure that could not be had is null, with its reason in `unavailable`."""

    source: str
    concurrency_limit: int  # max_num_seqs (vllm), batch_size (pytorch), max_batch_size
    mean_running: float | None = None  # requests decoding (first token out, last not yet)
    max_running: int | None = None
    mean_waiting: float | None = None  # requests in the engine before their first token
    max_waiting: int | None = None
    kv_cache_usage_mean: float | None = None  # share of the KV cache's capacity in tokens
    kv_cache_usage_max: float | None = None
    kv_cache_tokens: int | None = None  # that capacity
    preemptions: int | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)  # figure -> why it is null
    file: str | None = None  # engine_metrics.parquet, when there is a timeline
    rows: int = 0
    clock: str = ENGINE_METRICS_CLOCK
