"""Backend protocol: load a model, run full-length passes over token-id prompts.

A backend's life inside one run, as run.py drives it:

1. `engine(name).make_backend()` (the registry in `backends/__init__.py`) builds it, empty.
2. `load(cfg, run_dir)` builds the engine (the engine's imports came before, in
   `import_engine`); then `tokenize` and `vocab_size` work, and `version()` and `details()`
   describe it.
3. `warmup_batches(prompts)` names the prompt groups of one warmup pass, and
   `generate(group, timed=False)` runs them until throughput settles.
4. `synchronize()`, `generate(prompts, timed=True)`, `synchronize()`: the measured pass,
   between the energy window's edges. `timed=True` asks for per-request times.
5. `peak_memory_mb()` for the result, then `close()`, on every path out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from llem_harness.config import ExperimentConfig
    from llem_harness.contract_env import BackendDetails


@dataclass
class PassResult:
    """One pass over a set of prompts (a warmup batch, or the whole measured set)."""

    input_tokens: int
    output_tokens: int
    # Per request, milliseconds. Empty when the backend could not time them.
    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    # Per request: (first token, last token, tokens), on time.monotonic(). Backends that
    # schedule requests continuously (vllm) fill it; the steady-state window needs it.
    spans: list[tuple[float, float, int]] = field(default_factory=list)
    # Per request, aligned with `spans`: when it was handed to the engine (time.monotonic()).
    submitted: list[float] = field(default_factory=list)
    # Per request, aligned with `spans`: its prompt's tokens (the KV cache it holds).
    span_prompts: list[int] = field(default_factory=list)
    # Per response, in the prompts' order: its token ids, where the backend has a real
    # tokenizer to make text of them (pretrained weights), for the quality score; else empty.
    output_ids: list[list[int]] = field(default_factory=list)
    # Per response, in the prompts' order: its output tokens (all max_output_tokens unless
    # output_length: natural, where a response ends at EOS).
    lengths: list[int] = field(default_factory=list)


class Backend(Protocol):
    """One inference engine (a registered EngineSpec's backend). Life cycle: module docstring."""

    name: str
    latency_mode: str  # how ttft/itl were timed, recorded in the result

    def version(self) -> str | None: ...

    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        """Build the engine; afterwards `tokenize` and `vocab_size` are usable."""

    def tokenize(self, text: str) -> list[int]: ...

    @property
    def vocab_size(self) -> int: ...

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        """Generate exactly `output_tokens` (default: max_output_tokens) for every prompt,
        batched as configured. One output token is the prefill-only pass of the phases."""

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        """The prompt groups one warmup pass runs: every shape the measured pass will see."""

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work (window edges)."""

    def peak_memory_mb(self) -> tuple[float | None, str | None]: ...

    # Optional: `kv_cache_tokens() -> int | None`, the paged KV cache's capacity in tokens
    # once loaded (vllm), for the engine's load in the window (engine_load.py).

    def details(self) -> BackendDetails:
        """Engine settings worth recording (cache implementation, attention, device…): the
        engine's own BackendDetails subclass."""

    def close(self) -> None: ...
