"""`trtllm-serve` for the serving scenario, with the offline engine's settings (backend.py):
batch cap, parallelism, sequence length, KV memory share, and no KV block reuse. It serves
pretrained checkpoints only (the spec's check refuses dummy weights: the server detokenises
every chunk, and a dummy folder has no tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llem_harness.backends.spec import options_of
from llem_harness.backends.tensorrt.options import TensorRTOptions
from llem_harness.config import ExperimentConfig
from llem_harness.models import dummy_model_dir
from llem_harness.serving.server import max_len


class TensorRTServer:
    def command(
        self, cfg: ExperimentConfig, model: str, port: int, scratch: Path
    ) -> tuple[list[str], str]:
        """The command and the served name (trtllm-serve names the model by its path); the
        LLM API arguments it has no flag for go in a YAML file in `scratch`."""
        options = scratch / "llm_api_options.yaml"
        options.write_text(llm_api_options(cfg), encoding="utf-8")
        opts = options_of(cfg, TensorRTOptions)
        cmd = ["trtllm-serve", model, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--backend", "pytorch"]  # TensorRT-LLM's own PyTorch flow # not an engine
        cmd += ["--max_batch_size", str(opts.max_batch_size), "--tp_size", str(opts.tp_size)]
        cmd += ["--max_seq_len", str(max_len(cfg))]
        cmd += ["--kv_cache_free_gpu_memory_fraction", str(opts.kv_cache_free_gpu_memory_fraction)]
        if opts.max_num_tokens is not None:
            cmd += ["--max_num_tokens", str(opts.max_num_tokens)]
        return [*cmd, "--extra_llm_api_options", str(options)], model

    def dummy_model(self, cfg: ExperimentConfig, scratch: Path) -> tuple[Path, int]:
        return dummy_model_dir(cfg.model, scratch)

    def request_extra(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Its dummy folder lives in the scratch folder, which the caller removes."""


def llm_api_options(cfg: ExperimentConfig) -> str:
    """The LLM API arguments trtllm-serve has no flag for, as YAML: the offline backend's
    (no KV block reuse) and tensorrt.engine_args."""
    lines = ["kv_cache_config:", "  enable_block_reuse: false"]
    opts = options_of(cfg, TensorRTOptions)
    lines += [f"{key}: {json.dumps(value)}" for key, value in opts.engine_args.items()]
    return "\n".join(lines) + "\n"
