"""What a point's runs said beside their figures: their warnings, named shortly, and why a
figure is missing. Both are read from each completed run's result.json (results.parquet
keeps only the number of warnings and the energy's reason).

A warning's short name comes from `WARNING_NAMES` (the first pattern found in its text),
else from the text up to its first `:`, `;` or `(`. The point's flag names each warning
with the number of its runs that gave it: `warnings: short window ×3, warmup unsettled ×3`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# pattern in the harness's warning text → short name
WARNING_NAMES: tuple[tuple[str, str], ...] = (
    ("short measurement window", "short window"),
    ("short steady window", "short steady window"),
    ("warmup did not settle", "warmup unsettled"),
    ("throttling", "throttling"),
    ("zero or negative energy", "zero energy"),
    ("persistence mode is off", "persistence mode off"),
    ("energy counter is unsupported", "no energy counter"),
    ("initialised cuda while the idle baseline", "baseline remeasured"),
    ("requests failed", "failed requests"),
    ("fixed output length", "output length not fixed"),
    ("the measured pass holds the", "prompts repeated"),
)
UNNAMED = "unnamed (no result.json)"

# metric → where result.json says why it is missing (dotted paths, the first one given wins)
_ENERGY = ("energy.unavailable_reason",)
REASON_PATHS: dict[str, tuple[str, ...]] = {
    "energy_per_output_token_j": _ENERGY,
    "energy_total_j": _ENERGY,
    "energy_per_output_token_all_j": (
        *_ENERGY, "energy.cpu_unavailable_reason", "energy.dram_unavailable_reason",
    ),
    "energy_per_response_j": (*_ENERGY, "responses.unavailable_reason"),
    "response_tokens_mean": ("responses.unavailable_reason",),
    "prefill_energy_per_token_j": (*_ENERGY, "phases.prefill.unavailable_reason"),
    "decode_energy_per_token_j": (*_ENERGY, "phases.decode.unavailable_reason"),
    "mfu": ("flops.unavailable_reason",),
    "ttft_ms_mean": ("latency.unavailable_reason",),
    "co2_kg": ("co2.unavailable_reason", *_ENERGY),
    "achieved_rate": ("serving.unavailable_reason",),
    "energy_per_request_j": (*_ENERGY, "serving.steady.unavailable_reason"),
    "energy_per_request_whole_j": (*_ENERGY, "serving.whole.unavailable_reason"),
    "serving_energy_per_output_token_j": (*_ENERGY, "serving.steady.unavailable_reason"),
    "loadgen_cpu_fraction": ("serving.load_generator.unavailable_reason",),
    "accuracy": ("quality.unavailable_reason",),
    "energy_per_correct_answer_j": ("quality.unavailable_reason", *_ENERGY),
}  # fmt: skip
# the block whose absence (an older result schema) explains a missing figure
_QUALITY = ("accuracy", "energy_per_correct_answer_j")
_BLOCKS = {"mfu": "flops", "response_tokens_mean": "responses", "energy_per_response_j":
           "responses", "prefill_energy_per_token_j": "phases",
           "decode_energy_per_token_j": "phases"}  # fmt: skip


def warning_name(text: str) -> str:
    low = text.lower()
    for pattern, name in WARNING_NAMES:
        if pattern in low:
            return name
    head = re.split(r"[:;(]", text, maxsplit=1)[0].strip()
    head = re.sub(r"\d+(\.\d+)?", "N", head)  # "3 of 8 requests" and "2 of 8" are one kind
    return head[:40].rstrip() or "warning"


@dataclass
class RunNotes:
    warnings: list[str] = field(default_factory=list)  # short names, each once
    reasons: dict[str, str] = field(default_factory=dict)  # metric → why it is missing


def _at(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def read_run(result_json: Path) -> RunNotes | None:
    """The run's warnings and reasons; None when its result.json cannot be read."""
    try:
        data = json.loads(result_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    names = list(dict.fromkeys(warning_name(str(w)) for w in data.get("warnings") or []))
    reasons: dict[str, str] = {}
    for metric, paths in REASON_PATHS.items():
        why = next((str(r) for p in paths if (r := _at(data, p))), None)
        block = _BLOCKS.get(metric)
        if why is None and metric in _QUALITY and data.get("quality") is None:
            why = "the study has no `quality:` section (docs/quality.md)"
        if why is None and block is not None and data.get(block) is None:
            why = f"result.json has no `{block}` block (schema {data.get('schema_version', '?')})"
        if why is not None:
            reasons[metric] = why
    return RunNotes(names, reasons)


def warning_flag(counts: Counter[str]) -> str | None:
    """`warnings: short window ×3, warmup unsettled ×1`: each warning with the number of
    runs that gave it, the most frequent first; None without warnings."""
    if not counts:
        return None
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "warnings: " + ", ".join(f"{name} ×{n}" for name, n in items)
