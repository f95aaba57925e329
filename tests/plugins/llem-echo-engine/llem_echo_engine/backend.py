"""A backend with no model: every response is `max_output_tokens` copies of one token, made on
the CPU at a steady pace (so that a warmup settles and a pass has a duration)."""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any

from llem_echo_engine import EchoOptions
from llem_harness.backends.base import PassResult
from llem_harness.backends.spec import options_of
from llem_harness.backends.tokenizing import Tokenizing
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails

SECONDS_PER_TOKEN = 1e-5


class EchoBackend(Tokenizing):
    name = "echo"
    latency_mode = "none"

    def __init__(self) -> None:
        self.cfg: ExperimentConfig | None = None
        self.opts = EchoOptions()
        self._tokenizer: Any = None  # byte-level ids, as with dummy weights
        self._vocab = 256

    def version(self) -> str | None:
        return metadata.version("llem-echo-engine")

    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        self.cfg, self.opts = cfg, options_of(cfg, EchoOptions)

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        return [prompts]

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        assert self.cfg is not None
        n_out = output_tokens or self.cfg.max_output_tokens
        time.sleep(SECONDS_PER_TOKEN * n_out * len(prompts))
        return PassResult(
            input_tokens=sum(len(p) for p in prompts),
            output_tokens=n_out * len(prompts),
            lengths=[n_out] * len(prompts),
        )

    def synchronize(self) -> None:
        """Nothing runs in the background."""

    def peak_memory_mb(self) -> tuple[float | None, str | None]:
        return None, "the echo engine allocates no device memory"

    def details(self) -> BackendDetails:
        return BackendDetails(token_id=self.opts.token_id, engine_args=self.opts.engine_args)

    def close(self) -> None:
        self.cfg = None
