"""The engine's own OpenAI-compatible server, started on loopback inside the run.

vLLM's API server (`python -m vllm.entrypoints.openai.api_server`) and TensorRT-LLM's
`trtllm-serve` get the same engine settings as the offline backends (backends/vllm.py,
backends/tensorrt.py): the study's precision, seed, parallelism, batch cap and memory share,
random weights from a written config with `weights: dummy`. The server listens on 127.0.0.1
at a free port (no published port, no network), in a session of its own so that stopping it
ends its worker processes too, and writes its output to `server.log` in the run folder.

Start: the process is polled until `GET /health` answers 200; a server that exits, or does
not answer within `start_timeout_s`, is an error that quotes the log's tail. Stop: SIGINT
(the servers shut down cleanly on it), then SIGKILL to the group after `STOP_TIMEOUT_S`. The
server also gets SIGKILL from the kernel if the harness dies first (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from llem_harness.config import DTYPES, ExperimentConfig, TensorRTOptions, VLLMOptions
from llem_harness.quantization import engine_flag

SERVED_NAME = "llem"
LOG_FILE = "server.log"
START_TIMEOUT_S = 1800.0  # engine start with compilation of a large model
STOP_TIMEOUT_S = 4.0  # inside the runners' stop grace (local 5 s, docker 10 s)
LEN_SLACK = 8  # as backends/vllm.py: room above input + output tokens


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def max_len(cfg: ExperimentConfig) -> int:
    return cfg.max_input_tokens + cfg.max_output_tokens + LEN_SLACK


def vllm_command(cfg: ExperimentConfig, model: str, port: int) -> list[str]:
    opts = cfg.vllm or VLLMOptions()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    cmd += ["--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--dtype", DTYPES[cfg.precision], "--seed", str(cfg.random_seed)]
    cmd += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
    cmd += ["--gpu-memory-utilization", str(opts.gpu_memory_utilization)]
    cmd += ["--max-num-seqs", str(opts.max_num_seqs)]
    cmd += ["--max-model-len", str(opts.max_model_len or max_len(cfg))]
    cmd += [
        "--enable-prefix-caching" if opts.enable_prefix_caching else "--no-enable-prefix-caching"
    ]
    # as the offline engine (backends/vllm.py): no request statistics, which cost throughput;
    # and no access-log line per request
    cmd += ["--disable-log-stats", "--disable-uvicorn-access-log"]
    if opts.enforce_eager:
        cmd.append("--enforce-eager")
    if cfg.weights == "dummy":
        cmd += ["--load-format", "dummy", "--skip-tokenizer-init"]
    if cfg.quantization != "none":
        cmd += ["--quantization", engine_flag("vllm", cfg.quantization)]
    return cmd + engine_flags(opts.engine_args)


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


def tensorrt_command(cfg: ExperimentConfig, model: str, port: int, options: Path) -> list[str]:
    """`trtllm-serve`; `options` is a YAML file of further LLM API arguments (written by
    `tensorrt_options`)."""
    opts = cfg.tensorrt or TensorRTOptions()
    cmd = ["trtllm-serve", model, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend", "pytorch"]
    cmd += ["--max_batch_size", str(opts.max_batch_size), "--tp_size", str(opts.tp_size)]
    cmd += ["--max_seq_len", str(max_len(cfg))]
    cmd += ["--kv_cache_free_gpu_memory_fraction", str(opts.kv_cache_free_gpu_memory_fraction)]
    if opts.max_num_tokens is not None:
        cmd += ["--max_num_tokens", str(opts.max_num_tokens)]
    return [*cmd, "--extra_llm_api_options", str(options)]


def tensorrt_options(cfg: ExperimentConfig) -> str:
    """The LLM API arguments trtllm-serve has no flag for, as YAML: the offline backend's
    (no KV block reuse). It serves pretrained checkpoints only (config.py refuses dummy
    weights: its server detokenises every chunk, and a dummy folder has no tokenizer)."""
    lines = ["kv_cache_config:", "  enable_block_reuse: false"]
    opts = cfg.tensorrt or TensorRTOptions()
    lines += [f"{key}: {json.dumps(value)}" for key, value in opts.engine_args.items()]
    return "\n".join(lines) + "\n"


class ServerProcess:
    """One server: `start()` until healthy, `stop()` on every path out (idempotent)."""

    def __init__(self, cmd: list[str], port: int, log_path: Path) -> None:
        self.cmd, self.port, self.log_path = cmd, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.start_s: float | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start and wait until healthy; returns the seconds it took."""
        t0 = time.monotonic()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() ends its workers too
            preexec_fn=_die_with_parent,
        )
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"the server exited with code {code} before it was ready; "
                    f"the end of {self.log_path.name}:\n{self.log_tail()}"
                )
            if self._healthy():
                self.start_s = time.monotonic() - t0
                return self.start_s
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise RuntimeError(
                    f"the server did not answer /health within {timeout_s:.0f} s; the end of "
                    f"{self.log_path.name}:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> int | None:
        """SIGINT to the server's group, then SIGKILL; returns its exit code."""
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            code = _end_group(proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def details(self) -> dict[str, Any]:
        return {"command": self.cmd, "port": self.port, "start_s": self.start_s}


def _die_with_parent() -> None:
    """In the server's process, before it runs: SIGKILL it when the harness dies, whatever
    kills the harness (a runner's SIGKILL after its grace, a second Ctrl+C), so that no
    server outlives its run and holds the GPU. Linux only; elsewhere nothing is set."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _end_group(proc: subprocess.Popen[bytes]) -> int | None:
    for sig, wait in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):  # workers the server left behind
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.poll()
