"""The offline scenario: every prompt handed to the engine at once, in the harness's process.

After the window, the one-token pass splits prefill from decode (phases.py); the result then
gets the phases, the FLOPs, the responses and, for a steady-state window, the per-request
file (figures.py), and the engine's load in the window (engine_load.py): rebuilt from the
requests' times where the engine schedules continuously (vllm), the static batch otherwise."""

from __future__ import annotations

from pathlib import Path

from llem_harness.backends import engine, import_engine
from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.contract_engine import EngineMetrics
from llem_harness.energy.measurement import Meters
from llem_harness.engine_load import RequestTimes, engine_metrics, static_batch
from llem_harness.figures import offline_figures
from llem_harness.parquet import Column
from llem_harness.phases import PREFILL_MIN_S, PrefillPass, prefill_pass
from llem_harness.quality import per_correct, run_quality
from llem_harness.scenarios import RunParts


class Offline:
    def __init__(self) -> None:
        self.prefill: PrefillPass | None = None

    def backend(self, cfg: ExperimentConfig) -> Backend:
        return engine(cfg.backend).make_backend()

    def import_engine(self, cfg: ExperimentConfig) -> None:
        import_engine(cfg.backend)

    def after_window(self, backend: Backend, meters: Meters, prompts: list[list[int]]) -> None:
        # without energy to measure, one pass gives the duration
        min_s = 0.0 if meters.gpu.name == "none" else PREFILL_MIN_S
        self.prefill = prefill_pass(backend, meters, prompts, min_s)

    def finish(self, result: ExperimentResult, run: RunParts) -> None:
        w = run.window
        extra = score_answers(result, run)
        offline_figures(
            result, w.measured, run.prompts, self.prefill, w.duration, w.reading, w.opened,
            run.run_dir, extra,
        )  # fmt: skip
        result.engine_metrics = load_in_window(result, run)


def score_answers(result: ExperimentResult, run: RunParts) -> list[Column]:
    """The quality block (quality.py) from the window's responses, decoded now, outside
    the window; and their text and verdict as responses.parquet's extra columns."""
    cfg, ids = result.config, run.window.measured.output_ids
    decode = getattr(run.backend, "decode", None)
    texts = [decode(i) for i in ids] if callable(decode) else []
    dataset = Path(cfg.dataset) if Path(cfg.dataset).is_absolute() else run.run_dir / cfg.dataset
    n = len(run.prompts) // max(1, run.window.passes)  # the prompts before repeats
    quality, said, marks = run_quality(cfg.quality, cfg.weights, texts, dataset, n)
    result.quality = quality
    result.energy_per_correct_answer_j = per_correct(quality, result.energy.total_j)
    columns = []
    if said and len(said) == len(run.prompts):
        columns.append(Column("text", "string", said))
    if marks is not None and len(marks) == len(run.prompts):
        columns.append(Column("correct", "int32", [int(m) for m in marks]))
    return columns


def load_in_window(result: ExperimentResult, run: RunParts) -> EngineMetrics:
    """The engine's load over the measured window (engine_load.py)."""
    cfg, m, w = result.config, run.window.measured, run.window
    spec = engine(cfg.backend)
    limit = spec.concurrency(cfg)
    if spec.static_batch:
        return static_batch(len(run.prompts), limit)
    if not len(m.spans) == len(m.submitted) == len(m.span_prompts) > 0:
        return engine_metrics(
            [], (0.0, 0.0), 1.0, limit=limit, capacity=None, origin=None, run_dir=run.run_dir
        )  # the engine gave no per-request times: nulls, each with its reason
    reqs = [
        RequestTimes(sub, first, last, prompt, n)
        for sub, (first, last, n), prompt in zip(m.submitted, m.spans, m.span_prompts, strict=True)
    ]
    capacity = getattr(run.backend, "kv_cache_tokens", lambda: None)()
    step = result.measurement.sample_interval_ms / 1000.0
    window = (w.opened, w.opened + w.duration)
    return engine_metrics(
        reqs, window, step, limit=limit, capacity=capacity,
        origin=run.meter.clock_origin(), run_dir=run.run_dir,
    )  # fmt: skip
