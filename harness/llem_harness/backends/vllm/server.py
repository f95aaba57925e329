"""vLLM's API server (`python -m vllm.entrypoints.openai.api_server`) for the serving scenario,
with the offline engine's settings (backend.py): the study's precision, seed, parallelism, batch
cap and memory share, random weights from a written config with `weights: dummy`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from llem_harness.backends.spec import DTYPES, options_of
from llem_harness.backends.vllm import SPEC
from llem_harness.backends.vllm.models import stable_dummy_model
from llem_harness.backends.vllm.options import VLLMOptions
from llem_harness.config import ExperimentConfig
from llem_harness.serving.server import SERVED_NAME, max_len


class VLLMServer:
    def __init__(self) -> None:
        self._tmp: str | None = None

    def command(
        self, cfg: ExperimentConfig, model: str, port: int, scratch: Path
    ) -> tuple[list[str], str]:
        opts = options_of(cfg, VLLMOptions)
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
        cmd += ["--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--dtype", DTYPES[cfg.precision], "--seed", str(cfg.random_seed)]
        cmd += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
        cmd += ["--gpu-memory-utilization", str(opts.gpu_memory_utilization)]
        cmd += ["--max-num-seqs", str(opts.max_num_seqs)]
        cmd += ["--max-model-len", str(opts.max_model_len or max_len(cfg))]
        caching = opts.enable_prefix_caching
        cmd.append("--enable-prefix-caching" if caching else "--no-enable-prefix-caching")
        # as the offline engine: no request statistics, which cost throughput; and no
        # access-log line per request
        cmd += ["--disable-log-stats", "--disable-uvicorn-access-log"]
        if opts.enforce_eager:
            cmd.append("--enforce-eager")
        if cfg.weights == "dummy":
            cmd += ["--load-format", "dummy", "--skip-tokenizer-init"]
        if cfg.quantization != "none":
            cmd += ["--quantization", SPEC.quantization[cfg.quantization].flag]
        return cmd + engine_flags(opts.engine_args), SERVED_NAME

    def dummy_model(self, cfg: ExperimentConfig, scratch: Path) -> tuple[Path, int]:
        folder, vocab, self._tmp = stable_dummy_model(cfg.model)
        return folder, vocab

    def request_extra(self) -> dict[str, Any]:
        return {"return_token_ids": True}  # chunks carry tokens even without a tokenizer

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def engine_flags(args: dict[str, Any]) -> list[str]:
    """vllm.engine_args as the server's flags: `--key-name value`, a bool as `--key-name` or
    `--no-key-name`, a list or mapping as JSON. The server refuses a flag it does not know,
    and its log's tail says which."""
    flags: list[str] = []
    for key, value in args.items():
        name = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(name if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, dict | list):
            flags += [name, json.dumps(value)]
        else:
            flags += [name, str(value)]
    return flags
