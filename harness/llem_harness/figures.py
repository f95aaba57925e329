"""The offline pass's derived figures: the phases, the FLOPs and the per-request file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem_harness.backends.base import PassResult
from llem_harness.contract import (
    REQUESTS_FILE,
    RESPONSES_FILE,
    ExperimentResult,
    Flops,
    Responses,
)
from llem_harness.contract_files import RequestsFile
from llem_harness.flops import flops_block
from llem_harness.phases import PrefillPass, kv_reuse, phases_block
from llem_harness.steady import write_requests
from llem_harness.summary import stats


def offline_figures(
    result: ExperimentResult,
    measured: PassResult,
    prompts: list[list[int]],
    pre: PrefillPass | None,
    duration: float,
    reading: Any,
    t0_mono: float,
    run_dir: Path,
    extra: list[Any] | None = None,
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
    result.responses = responses_block(
        cfg.output_length, measured.lengths, [len(p) for p in prompts], result.energy.total_j,
        result.energy.unavailable_reason, run_dir, extra,
    )  # fmt: skip
    overrides = result.backend_details.get("config_overrides")
    why_no_flops = reuse or natural_flops(cfg.output_length)
    if isinstance(overrides, list) and overrides and why_no_flops is None:
        changed = ", ".join(map(str, overrides))
        why_no_flops = (
            f"{cfg.backend}.engine_args change the model's config ({changed}), "
            "and the FLOPs count reads the model's own config"
        )
    result.flops = flops_block(
        cfg.model, cfg.weights, cfg.precision, [len(p) for p in prompts],
        cfg.max_output_tokens, duration, result.energy.total_j, result.environment.gpus,
    ) if why_no_flops is None else Flops(unavailable_reason=why_no_flops)  # fmt: skip
    if cfg_window == "steady_state" and measured.spans:
        n = write_requests(run_dir / REQUESTS_FILE, measured.spans, measured.submitted, t0_mono)
        result.requests = RequestsFile(rows=n)


def natural_flops(output_length: str) -> str | None:
    """Why FLOPs are not counted with natural lengths, or None."""
    if output_length != "natural":
        return None
    return "output_length: natural: the FLOPs count assumes max_output_tokens per response"


def responses_block(
    output_length: str,
    lengths: list[int],
    prompt_lengths: list[int] | None,
    total_j: float | None,
    why_no_energy: str | None,
    run_dir: Path | None,
    extra: list[Any] | None = None,
) -> Responses:
    """The responses' lengths and energy per response; with a `run_dir` and lengths in the
    prompts' order, every response's prompt and output tokens go to responses.parquet."""
    file = None
    if run_dir is not None and prompt_lengths is not None and len(prompt_lengths) == len(lengths):
        from llem_harness import __version__
        from llem_harness.parquet import Column, write_parquet

        columns = [
            Column("request", "int32", list(range(len(lengths)))),
            Column("prompt_tokens", "int32", list(prompt_lengths)),
            Column("output_tokens", "int32", list(lengths)),
            *(extra or []),  # the responses' text and verdict, with quality (quality.py)
        ]
        write_parquet(run_dir / RESPONSES_FILE, columns, created_by=f"llem-harness {__version__}")
        file = RESPONSES_FILE
    count = len(lengths)
    per = total_j / count if total_j is not None and count else None
    return Responses(
        output_length=output_length,
        count=count,
        output_tokens=stats([float(n) for n in lengths]),
        energy_per_response_j=per,
        file=file,
        unavailable_reason=None if per is not None else (why_no_energy or "no response"),
    )
