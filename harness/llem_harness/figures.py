"""The offline pass's derived figures: the phases, the FLOPs and the per-request file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem_harness.backends.base import PassResult
from llem_harness.contract import REQUESTS_FILE, ExperimentResult, Flops
from llem_harness.flops import flops_block
from llem_harness.phases import PrefillPass, kv_reuse, phases_block
from llem_harness.steady import write_requests


def offline_figures(
    result: ExperimentResult,
    measured: PassResult,
    prompts: list[list[int]],
    pre: PrefillPass | None,
    duration: float,
    reading: Any,
    t0_mono: float,
    run_dir: Path,
) -> None:
    """The phases, the FLOPs and the per-request file of an offline pass."""
    cfg, cfg_window = result.config, result.measurement.window
    assert pre is not None
    reuse = kv_reuse(cfg)
    result.phases = phases_block(
        duration, reading.total_j, measured.output_tokens, len(prompts), pre.seconds,
        pre.energy_j, pre.tokens, reading.unavailable_reason, pre.unavailable_reason,
        reuse, pre.passes,
    )  # fmt: skip
    overrides = (result.backend_details or {}).get("config_overrides")
    why_no_flops = reuse
    if overrides and why_no_flops is None:
        why_no_flops = (
            f"pytorch.engine_args change the model's config ({', '.join(overrides)}), and the "
            "FLOPs count reads the model's own config"
        )
    result.flops = flops_block(
        cfg.model, cfg.weights, cfg.precision, [len(p) for p in prompts],
        cfg.max_output_tokens, duration, result.energy.total_j, result.environment["gpus"],
    ) if why_no_flops is None else Flops(unavailable_reason=why_no_flops)  # fmt: skip
    if cfg_window == "steady_state" and measured.spans:
        n = write_requests(run_dir / REQUESTS_FILE, measured.spans, measured.submitted, t0_mono)
        result.requests = {
            "file": REQUESTS_FILE,
            "rows": n,
            "clock": "seconds since the measured window opened "
            "(timeseries t_s = timeseries.window_start_s + these)",
        }
