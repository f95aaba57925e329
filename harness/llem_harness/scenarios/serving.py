"""The serving scenario: the engine's own server under load from the load generator, requests
arriving over time (serving/, docs/serving.md). The harness's process imports no engine."""

from __future__ import annotations

from pathlib import Path

from llem_harness.backends import engine
from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.energy.measurement import Meters
from llem_harness.engine_load import RequestTimes, engine_metrics, kv_capacity_from_log
from llem_harness.parquet import Column
from llem_harness.quality import per_correct, run_quality
from llem_harness.scenarios import RunParts
from llem_harness.serving.backend import ServingBackend
from llem_harness.serving.measure import finish_serving
from llem_harness.serving.records import RequestRecord, completed
from llem_harness.serving.server import LOG_FILE


class Serving:
    def backend(self, cfg: ExperimentConfig) -> Backend:
        return ServingBackend(cfg.backend)

    def import_engine(self, cfg: ExperimentConfig) -> None:
        """The server imports the engine in its own process, at load."""

    def after_window(self, backend: Backend, meters: Meters, prompts: list[list[int]]) -> None:
        """A server's phases cannot be split by a one-token pass (serving/measure.py)."""

    def finish(self, result: ExperimentResult, run: RunParts) -> None:
        assert isinstance(run.backend, ServingBackend)
        w = run.window
        extra = score_requests(result, run.backend.records, run)
        finish_serving(
            result, run.backend, run.meter, w.reading, w.duration, w.opened, run.run_dir, extra
        )
        result.energy_per_correct_answer_j = per_correct(result.quality, result.energy.total_j)
        cfg, log = result.config, run.run_dir / LOG_FILE
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        reqs = [
            RequestTimes(c.sent_s, c.first_token_s, c.last_token_s, c.prompt_tokens, n)
            for c in completed(run.backend.records)
            if (n := c.output_tokens) is not None
        ]  # as the load generator saw them: `submitted` is when it sent the request
        result.engine_metrics = engine_metrics(
            reqs, (w.opened, w.opened + w.duration), result.measurement.sample_interval_ms / 1000,
            limit=engine(cfg.backend).concurrency(cfg), capacity=kv_capacity_from_log(text),
            origin=run.meter.clock_origin(), run_dir=run.run_dir,
        )  # fmt: skip


def score_requests(
    result: ExperimentResult, records: list[RequestRecord], run: RunParts
) -> list[Column]:
    """The quality block (quality.py) from the measured load's responses, as the load
    generator streamed them; a failed request is a wrong answer. Their text and verdict go
    into the requests' file. Request `i` asked prompt `i % n_prompts`."""
    cfg = result.config
    texts = [r.text if r.ok else "" for r in records]
    dataset = Path(cfg.dataset) if Path(cfg.dataset).is_absolute() else run.run_dir / cfg.dataset
    n = len(run.prompts) // max(1, run.window.passes)
    result.quality, said, marks = run_quality(cfg.quality, cfg.weights, texts, dataset, n)
    columns = []
    if result.quality is not None and all(t is not None for t in said):
        columns.append(Column("text", "string", said))
    if marks is not None:
        columns.append(Column("correct", "int32", [int(m) for m in marks]))
    return columns
