"""The serving scenario as a backend: the engine's server, driven by the load generator.

It meets `backends.base.Backend`, so run.py's phases hold: `load` starts the server
(server.py) and waits until it is healthy; a warmup pass sends a group of prompts at once;
the measured pass sends the study's requests at their arrival times through the load
generator (loadgen.py), a separate process in the same container. This process imports no
engine: the server is the engine.

The measured pass keeps every request's record (`records`, on time.monotonic(), which the
load generator's process shares) and the load generator's own CPU time over the load (it
reports `time.process_time()` from the load's start to its end, every sender's together) for
the result's `serving` block (measure.py). The measured pass runs over as many sender
processes as its mean rate needs (senders.py); a rate past what this run's cores allow is
refused at load, before the server starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from llem_harness.backends import engine
from llem_harness.backends.base import PassResult
from llem_harness.backends.spec import DTYPES
from llem_harness.backends.tokenizing import Tokenizing
from llem_harness.backends.whole_pass import WholePass
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails
from llem_harness.exchange import read_request
from llem_harness.gguf_dense import dense_folder
from llem_harness.gguf_model import is_gguf
from llem_harness.serving import loadgen, server
from llem_harness.serving.arrivals import arrival_offsets
from llem_harness.serving.loadgen import RequestSpec
from llem_harness.serving.records import RequestRecord, completed
from llem_harness.serving.senders import senders_for, usable_cores
from llem_harness.serving.trace import Trace, read_trace
from llem_harness.termination import communicate, die_with_parent

WARMUP_REQUESTS = 16  # prompts sent at once in one warmup pass (fewer if the study has fewer)


class ServingDetails(BackendDetails):
    """The engine's section as the server got it, and the server's command line."""

    scenario: str = "serving"
    server_log: str = server.LOG_FILE
    load_generator: str = "llem_harness.serving.loadgen (a separate process, loopback)"
    server: server.ServerDetails | None


class ServingBackend(WholePass, Tokenizing):
    latency_mode = "loadgen_stream"  # the load generator's clock at each streamed chunk
    memory_owner = "the engine runs in the server's processes"

    def __init__(self, engine_name: str) -> None:
        self.name = engine_name
        self.cfg: ExperimentConfig | None = None
        self.server: server.ServerProcess | None = None
        self.run_dir: Path | None = None
        self._vocab = 0
        self._tokenizer: Any = None
        self._tmp: str | None = None
        self._dense_tmp: str | None = None  # an unpacked GGUF model without an engine cache
        self.spec = engine(engine_name)
        self.engine_server = self.spec.make_server()
        self.served_name = server.SERVED_NAME
        self.records: list[RequestRecord] = []
        self.load_start: float | None = None
        self.loadgen_cost: dict[str, float | None] = {}
        self.senders = 1  # the measured pass's sender processes (senders.py)
        self.arrival_seed = 0
        self.max_tokens: dict[int, int] = {}  # the timed pass's per-request lengths (a trace's)

    def version(self) -> str | None:
        for dist in self.spec.distributions:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return None

    # -- the server ----------------------------------------------------------------------
    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.arrival_seed = arrival_seed(cfg, read_request(run_dir).run.cycle)
        self.senders = self._senders()  # a rate past the load generator's limit: refused here
        model = self._model(cfg)
        port = server.free_port()
        cmd, self.served_name = self.engine_server.command(cfg, model, port, Path(self._scratch()))
        self.server = server.ServerProcess(cmd, port, run_dir / server.LOG_FILE)
        self.server.start()

    def _scratch(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="llem-serving-")
        return self._tmp

    def _model(self, cfg: ExperimentConfig) -> str:
        if cfg.weights != "dummy":
            import transformers

            model, offline = cfg.model, os.environ.get("HF_HUB_OFFLINE") == "1"
            if is_gguf(model):  # the server loads it unpacked into a folder (gguf_dense.py)
                folder, self._dense_tmp = dense_folder(model, DTYPES[cfg.precision])
                model, offline = str(folder), True
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                model, local_files_only=offline
            )
            self._vocab = len(self._tokenizer)
            return model
        folder, self._vocab = self.engine_server.dummy_model(cfg, Path(self._scratch()))
        return str(folder)

    # -- passes --------------------------------------------------------------------------
    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        return [prompts[:WARMUP_REQUESTS]]

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        assert self.cfg is not None
        n_out = output_tokens or self.cfg.max_output_tokens
        lengths: list[int] | None = None
        if timed:
            offsets, lengths = self._schedule(len(prompts), n_out)
            concurrency = self.cfg.serving_options().max_concurrency
            keep = self.cfg.quality is not None and self.cfg.weights != "dummy"
        else:
            offsets, concurrency, keep = [0.0] * len(prompts), None, False
        senders = self.senders if timed else 1
        specs = [
            RequestSpec(
                id=i,
                prompt=prompts[i % len(prompts)],
                max_tokens=lengths[i] if lengths is not None else n_out,
                arrival_s=at,
            )
            for i, at in enumerate(offsets)
        ]
        sampling = self._sampling(n_out)
        if lengths is not None:  # per-request lengths: ignore_eos alone holds them
            sampling.pop("min_tokens", None)
        start, records, cost = self._drive(specs, concurrency, senders, sampling, keep_text=keep)
        if timed:
            self.records, self.load_start, self.loadgen_cost = records, start, cost
            self.max_tokens = {s.id: s.max_tokens for s in specs} if lengths is not None else {}
        return pass_result(records)

    def _schedule(self, n_prompts: int, n_out: int) -> tuple[list[float], list[int] | None]:
        """The timed pass's due times, and with a trace that gives output lengths each
        request's `max_tokens` (1..n_out); a trace is the run folder's copy (or an absolute
        path), its length capped by serving.n_requests."""
        assert self.cfg is not None and self.run_dir is not None
        opts = self.cfg.serving_options()
        if opts.arrival == "trace":
            trace = self._trace()
            n = min(len(trace.offsets), opts.n_requests or len(trace.offsets))
            if trace.output_tokens is None:
                return trace.offsets[:n], None
            return trace.offsets[:n], [max(1, min(k, n_out)) for k in trace.output_tokens[:n]]
        offsets = arrival_offsets(
            None if opts.duration_s is not None else (opts.n_requests or n_prompts),
            opts.rate,
            opts.arrival,
            opts.burstiness,
            seed=self.arrival_seed,
            duration_s=opts.duration_s,
        )
        return offsets, None

    def _trace(self) -> Trace:
        """`arrival: trace`'s trace: the run folder's copy (or an absolute path), scaled."""
        assert self.cfg is not None and self.run_dir is not None
        opts = self.cfg.serving_options()
        assert opts.trace is not None
        path = Path(opts.trace).expanduser()
        where = path if path.is_absolute() else self.run_dir / path
        return read_trace(where, opts.trace_scale, opts.trace_unit)

    def _senders(self) -> int:
        """The measured pass's sender count, from the schedule's mean rate (a trace's: its
        requests over their span); a SendRateError for one this run's cores cannot keep."""
        assert self.cfg is not None
        opts = self.cfg.serving_options()
        rate, knob, lower = opts.rate, "serving.request_rate", "serving.request_rate"
        if opts.arrival == "trace":
            offsets = self._trace().offsets[: opts.n_requests]
            span = offsets[-1] - offsets[0]
            rate = (len(offsets) - 1) / span if span > 0 else None  # None: all at once
            assert opts.trace is not None
            knob = f"the trace {Path(opts.trace).name} at serving.trace_scale {opts.trace_scale:g}"
            lower = "serving.trace_scale"
        return senders_for(rate, opts.max_concurrency, usable_cores(), knob, lower)

    def _drive(
        self,
        specs: list[RequestSpec],
        concurrency: int | None,
        senders: int,
        sampling: dict[str, Any],
        keep_text: bool,
    ) -> tuple[float, list[RequestRecord], dict[str, float | None]]:
        """Run the load generator over `specs` with `senders` processes: (its start, the
        records, its cost). With `keep_text` (a `quality:` section), the records hold the
        responses' texts."""
        assert self.server is not None and self.cfg is not None
        folder = Path(self._scratch())
        requests, out = folder / "requests.jsonl", folder / "records.jsonl"
        with requests.open("w", encoding="utf-8") as fh:
            for s in specs:
                fh.write(json.dumps(s.__dict__) + "\n")
        cmd = [sys.executable, "-I", loadgen.__file__]  # by path: the standard library only
        cmd += ["--url", f"http://127.0.0.1:{self.server.port}", "--model", self.served_name]
        cmd += ["--requests", str(requests), "--out", str(out)]
        cmd += ["--extra-json", json.dumps(sampling)]
        if concurrency is not None:
            cmd += ["--max-concurrency", str(concurrency)]
        if keep_text:
            cmd.append("--keep-text")
        if senders > 1:
            cmd += ["--senders", str(senders)]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent
        )
        stdout, stderr = communicate(proc)  # the load ends with the run
        if proc.returncode != 0:
            raise RuntimeError(
                f"the load generator failed (exit {proc.returncode}): "
                f"{stderr.decode(errors='replace')[-2000:]}"
            )
        summary = json.loads(stdout.decode().strip().splitlines()[-1])
        lines = out.read_text(encoding="utf-8").splitlines()
        records = [RequestRecord.from_json(json.loads(line)) for line in lines]
        if not any(r.ok for r in records):
            errors = sorted({str(r.error) for r in records})[:3]
            raise RuntimeError(
                f"no request to the server completed ({len(records)} sent): "
                f"{'; '.join(errors)}; the end of {server.LOG_FILE}:\n{self.server.log_tail(20)}"
            )
        start = float(summary["start_s"])
        cost = {
            "wall_s": float(summary["end_s"]) - start,
            "cpu_s": summary.get("cpu_s"),
            "senders": summary.get("senders"),
        }
        return start, records, cost

    def _sampling(self, n_out: int) -> dict[str, Any]:
        """Fixed output length and the study's decoding, as the offline backends set them."""
        assert self.cfg is not None
        d = self.cfg.decoding
        fixed = self.cfg.output_length == "fixed"
        body: dict[str, Any] = {
            "min_tokens": n_out if fixed else 0,
            "ignore_eos": fixed,
            "temperature": d.temperature,
            "top_p": d.top_p,
            **({"top_k": d.top_k} if d.top_k > 0 else {}),  # 0: the server's default (none)
            "repetition_penalty": d.repetition_penalty,
        }
        if d.temperature > 0:
            body["seed"] = self.cfg.random_seed
        return body | self.engine_server.request_extra()

    def details(self) -> ServingDetails:
        options = self.cfg.options().model_dump(mode="json") if self.cfg is not None else {}
        return ServingDetails(
            **options, server=self.server.details() if self.server is not None else None
        )

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.engine_server.close()
        for tmp in (self._tmp, self._dense_tmp):
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self._tmp = self._dense_tmp = None


def arrival_seed(cfg: ExperimentConfig, cycle: int) -> int:
    """The arrival schedule's seed: the study's seed, so every cycle of a point sends the same
    schedule (its spread is the machine's), or with `serving.arrival_per_cycle` one drawn
    from the seed and the cycle (the spread covers the arrivals too)."""
    if not cfg.serving_options().arrival_per_cycle:
        return cfg.random_seed
    return cfg.random_seed * 1_000_003 + cycle


def pass_result(records: list[RequestRecord]) -> PassResult:
    """A pass's tokens and per-request latencies from load generator records (ok ones)."""
    result = PassResult(input_tokens=0, output_tokens=0)
    for c in completed(records):
        result.input_tokens += c.prompt_tokens
        result.output_tokens += c.output_tokens
        result.lengths.append(c.output_tokens)
        result.ttft_ms.append(c.ttft_ms)
        if c.tpot_ms is not None:
            result.itl_ms.append(c.tpot_ms)
        result.request_ms.append(c.e2e_ms)
        result.spans.append((c.first_token_s, c.last_token_s, c.output_tokens))
        result.submitted.append(c.sent_s)
    return result
