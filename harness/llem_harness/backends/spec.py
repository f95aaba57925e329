"""What the harness and the host know of an engine: one `EngineSpec` each, in its own package.

An engine's package (`backends/<name>/`) holds everything that knows that engine: its
`__init__.py` defines `SPEC`, an `EngineSpec`, from light modules only (its options model, its
quantization rows); the backend class and the serving command are named as `module:attr`
strings and imported when a run needs them. The registry (`backends/__init__.py`) lists the
built-in engines and reads the `llem_harness.engines` entry-point group, so a distribution of
its own can add one (docs/architecture.md, "Adding an engine").

Nothing here imports the config module at run time (it imports the registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

if TYPE_CHECKING:
    from llem_harness.backends.base import Backend
    from llem_harness.config import ExperimentConfig

# Each precision's dtype as the engines name it (torch attribute, `dtype` of the engines' APIs).
DTYPES: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ENGINE_ARGS_HELP = "further keywords for the engine, checked against its signatures at start"


class EngineOptions(BaseModel):
    """An engine's own section of a study (`<engine>:`). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine_args: dict[str, JsonValue] = Field(default_factory=dict, description=ENGINE_ARGS_HELP)


@dataclass(frozen=True)
class Support:
    """How one engine runs one quantization method (quantization.py reads these rows)."""

    engine: str  # the engine's mechanism, as the docs and the result name it
    weights: tuple[str, ...]  # the `weights:` values it works with
    min_cc: float | None  # the lowest CUDA compute capability; None: any GPU
    cpu: bool  # runs without a GPU
    needs: str = ""  # what a pretrained checkpoint must hold, for the error's fix
    flag: str = ""  # the engine's own name for it, where the harness passes one
    module: str = ""  # a Python package the method needs beside the engine itself


class Server(Protocol):
    """An engine's OpenAI-compatible server, for the serving scenario (serving/backend.py)."""

    def command(
        self, cfg: ExperimentConfig, model: str, port: int, scratch: Path
    ) -> tuple[list[str], str]:
        """The server's command line and the name it serves the model under."""

    def dummy_model(self, cfg: ExperimentConfig, scratch: Path) -> tuple[Path, int]:
        """A folder of the model's config for `weights: dummy`, and its vocabulary size."""

    def request_extra(self) -> dict[str, Any]:
        """Fields every completion request carries beside the study's sampling."""

    def close(self) -> None:
        """Release what `dummy_model` made."""


def _one(cfg: ExperimentConfig) -> int:
    return 1


def _nothing(cfg: ExperimentConfig) -> str | None:
    return None


def _batch(cfg: ExperimentConfig) -> int:
    return cfg.batch_size


@dataclass(frozen=True)
class EngineSpec:
    """One engine, as every module outside its package sees it."""

    name: str  # the study's `backend:` value and the name of its options section
    label: str  # as people write it ("vLLM"), for messages
    options: type[EngineOptions]
    backend: str  # "module:Class" of its `Backend`, imported when a run starts
    reserved_args: Mapping[str, str]  # engine_args keys the harness sets -> the field that does
    imports: tuple[str, ...] = ()  # heavy modules imported ahead of loading (timing.imports_s)
    packages: tuple[str, ...] = ()  # what the harness's Python must hold (the local runner)
    distributions: tuple[str, ...] = ()  # its version: the first installed one
    quantization: Mapping[str, Support] = field(default_factory=dict)
    unsupported: Mapping[str, str] = field(default_factory=dict)  # method -> why not
    server: str | None = None  # "module:attr" of its `Server`; None: no serving scenario
    server_label: str = ""  # the server, as people name it
    cache_vars: Mapping[str, str] = field(default_factory=dict)  # env var -> engine-cache folder
    bytecode_files: tuple[str, ...] = ()  # engine sources whose bytecode is worth keeping
    gpus: Callable[[ExperimentConfig], int] = _one  # CUDA ordinals 0..n-1 it runs on
    concurrency: Callable[[ExperimentConfig], int] = _batch  # requests in flight at most
    # runs the prompts in fixed batches, one after another: its load is the batch as
    # configured (engine_load.static_batch), not a schedule to rebuild from request times
    static_batch: bool = False
    gguf: bool = False  # loads GGUF checkpoint files (`model:` a .gguf file or alias)
    kv_reuse: Callable[[ExperimentConfig], str | None] = _nothing  # why passes may share KV
    check: Callable[[ExperimentConfig], str | None] = _nothing  # an engine's own refusal

    def make_backend(self) -> Backend:
        backend: Backend = load_attr(self.backend)()
        return backend

    def make_server(self) -> Server:
        if self.server is None:
            raise ValueError(f"backend `{self.name}` has no server")
        server: Server = load_attr(self.server)()
        return server


def load_attr(target: str) -> Any:
    """`module:attr` imported."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


OptionsT = TypeVar("OptionsT", bound=EngineOptions)


def options_of(cfg: ExperimentConfig, kind: type[OptionsT]) -> OptionsT:
    """The config's engine section as its engine's own options type."""
    opts = cfg.options()
    if not isinstance(opts, kind):
        raise TypeError(f"backend `{cfg.backend}` has no {kind.__name__}")
    return opts
