"""GPU validation of the measurement harness (needs an NVIDIA GPU with NVML; run natively).

    python bench/gpu_validation.py --out DIR [--sections repeat,energy,overhead]

Sections (each appends its figures to DIR/gpu_validation.json as it finishes):
  repeat   full harness runs (Harness.run on a run directory, exactly as in a container),
           5 repeats per (batch size, cache implementation): J/token CV, throughput CV.
  energy   one model, several measurement windows metered at once by the harness's NVML
           meter (counter and sampled-power integral) and by Zeus's ZeusMonitor.
  overhead throughput with the sampler running vs no meter at all (>= 10 interleaved pairs),
           and harness generate (with its latency streamer) vs a plain transformers
           `generate` loop with identical settings (interleaved pairs).
Model: Llama-3.2-1B shapes with random weights (`weights: dummy`), bf16, synthetic prompts
of exactly 128 tokens, 128 output tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "harness"))

from llem_harness.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llem_harness.config import ExperimentConfig  # noqa: E402
from llem_harness.contract import (  # noqa: E402
    MeasurementSettings,
    standalone_request,
)
from llem_harness.datasets import load_prompt_ids  # noqa: E402
from llem_harness.energy.nvml import NvmlMeter  # noqa: E402
from llem_harness.run import Harness  # noqa: E402

MODEL = "meta-llama/Llama-3.2-1B"
# n_prompts per batch size: a measured window of roughly 10 s on an H100.
PROMPTS = {8: 184, 32: 576}
# The dynamic cache runs about 4x slower at batch 8 (the probe saw ~600 tok/s).
DYNAMIC_PROMPTS = {8: 56, 32: 144}


def config(batch: int, cache: str, n_prompts: int | None = None) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": MODEL,
            "backend": "pytorch",
            "weights": "dummy",
            "precision": "bf16",
            "batch_size": batch,
            "dataset": "synthetic",
            "n_prompts": n_prompts or (PROMPTS if cache == "static" else DYNAMIC_PROMPTS)[batch],
            "max_input_tokens": 128,
            "max_output_tokens": 128,
            "warmup_runs": 3,
            "warmup_max_runs": 12,
            "warmup_cv_threshold": 0.02,
            "pytorch": {"cache_implementation": cache},
        }
    )


SAVE: Any = lambda out: None  # noqa: E731  (set by main to write the JSON file)


def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.fmean(xs) if len(xs) > 1 else float("nan")


def _harness_run(run_dir: Path, fresh: bool) -> int:
    """One harness run on `run_dir`: in this process, or in a fresh one (as in a container)."""
    if not fresh:
        return Harness(run_dir).run()
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "harness")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    cmd = [sys.executable, "-m", "llem_harness", "run", str(run_dir)]
    return subprocess.run(cmd, env=env, check=False).returncode


def section_repeat(
    out: dict[str, Any],
    repeats: int,
    configs: list[tuple[int, str]],
    prompts_scale: int = 1,
    fresh: bool = False,
) -> None:
    rows = out.get("repeat", [])
    for batch, cache in configs:
        jpt, tps, runs = [], [], []
        n_prompts = (PROMPTS if cache == "static" else DYNAMIC_PROMPTS)[batch] * prompts_scale
        row: dict[str, Any] = {}
        rows.append(row)
        for rep in range(repeats):
            cfg = config(batch, cache, n_prompts)
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(tmp)
                req = standalone_request(
                    cfg,
                    run_id=f"bs{batch}-{cache}-{rep}",
                    index=rep + 1,
                    measurement=MeasurementSettings(
                        energy_backend="nvml", sample_interval_ms=100, baseline_seconds=3.0
                    ),
                )
                (run_dir / "experiment.json").write_text(req.model_dump_json())
                t_start = time.time()
                code = _harness_run(run_dir, fresh)
                if code != 0:
                    print((run_dir / "error.json").read_text())
                    raise SystemExit(f"harness failed for bs={batch} cache={cache}")
                res = json.loads((run_dir / "result.json").read_text())
            jpt.append(res["energy_per_output_token_j"])
            tps.append(res["throughput_tokens_per_s"])
            runs.append(
                {
                    k: res[k]
                    for k in (
                        "duration_s",
                        "throughput_tokens_per_s",
                        "energy_per_output_token_j",
                        "warnings",
                    )
                }
                | {
                    "energy": res["energy"],
                    "warmup": res["warmup"],
                    "power_integral_j": res["timeseries"]["power_integral_j"],
                    "t_start": round(t_start, 3),
                    "t_end": round(time.time(), 3),
                }
            )
            row.clear()
            row.update(
                {
                    "batch_size": batch,
                    "cache": cache,
                    "n_prompts": n_prompts,
                    "fresh_process": fresh,
                    "repeats": len(runs),
                    "j_per_token_mean": statistics.fmean(jpt),
                    "j_per_token_cv": cv(jpt),
                    "tokens_per_s_mean": statistics.fmean(tps),
                    "tokens_per_s_cv": cv(tps),
                    "partial": len(runs) < repeats,
                    "runs": runs,
                }
            )
            out["repeat"] = rows
            SAVE(out)  # a cut-off run still reports the repeats that finished
        print(
            f"[repeat] bs={batch} cache={cache} n_prompts={n_prompts}: J/token "
            f"{row['j_per_token_mean']:.4f} CV {row['j_per_token_cv']:.2%}; tok/s "
            f"{row['tokens_per_s_mean']:.0f} CV {row['tokens_per_s_cv']:.2%}",
            flush=True,
        )


def loaded(batch: int, cache: str, n_prompts: int) -> tuple[PyTorchBackend, list[list[int]]]:
    cfg = config(batch, cache, n_prompts)
    backend = PyTorchBackend()
    backend.load(cfg, Path("."))
    prompts = load_prompt_ids(cfg, backend.tokenize, backend.vocab_size, Path("."))
    for _ in range(4):  # warm up every shape
        for group in backend.warmup_batches(prompts):
            backend.generate(group, timed=False)
    backend.synchronize()
    return backend, prompts


def section_energy(out: dict[str, Any], windows: int) -> None:
    from zeus.monitor import ZeusMonitor

    rows = []
    for batch in (8, 32):
        backend, prompts = loaded(batch, "static", PROMPTS[batch])
        meter = NvmlMeter([0], sample_interval_ms=100)
        meter.start()
        zeus = ZeusMonitor(gpu_indices=[0], approx_instant_energy=True)
        for w in range(windows):
            backend.synchronize()
            zeus.begin_window("w", sync_execution=False)
            meter.begin_window()
            backend.generate(prompts, timed=True)
            backend.synchronize()
            reading = meter.end_window()
            z = zeus.end_window("w", sync_execution=False)
            zj = float(sum(z.gpu_energy.values()))
            row = {
                "batch_size": batch,
                "window": w,
                "duration_s": reading.duration_s,
                "nvml_counter_j": reading.total_j,
                "power_integral_j": reading.power_integral_j,
                "zeus_j": zj,
                "method": reading.method,
            }
            assert reading.total_j and reading.power_integral_j
            row["integral_vs_counter"] = reading.power_integral_j / reading.total_j - 1
            row["zeus_vs_counter"] = zj / reading.total_j - 1
            print(
                f"[energy] bs={batch} w{w}: counter {reading.total_j:.1f} J, integral "
                f"{row['integral_vs_counter']:+.2%}, zeus {row['zeus_vs_counter']:+.3%} "
                f"({reading.duration_s:.1f} s)",
                flush=True,
            )
            rows.append(row)
        meter.stop()
        backend.close()
    out["energy"] = rows


def _plain_generate(backend: PyTorchBackend, prompts: list[list[int]]) -> int:
    """A plain transformers loop: same batches, same padding and settings, no streamer."""
    import torch

    total = 0
    assert backend.cfg is not None
    for i in range(0, len(prompts), backend.cfg.batch_size):
        batch = prompts[i : i + backend.cfg.batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in batch], device=backend.device)
        mask = (
            torch.arange(width, device=backend.device)[None, :]
            >= torch.tensor([width - len(p) for p in batch], device=backend.device)[:, None]
        )
        with torch.inference_mode():
            o = backend.model.generate(
                input_ids=ids,
                attention_mask=mask.long(),
                max_new_tokens=128,
                min_new_tokens=128,
                do_sample=False,
                pad_token_id=0,
                cache_implementation=backend.opts.cache_implementation,
            )
        total += (o.shape[1] - width) * len(batch)
    torch.cuda.synchronize()
    return int(total)


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    n = fn()
    return float(n) / (time.perf_counter() - t0)


def section_overhead(out: dict[str, Any], pairs: int) -> None:
    backend, prompts = loaded(8, "static", 64)
    sampler_ratios, plain_ratios = [], []
    for i in range(pairs):

        def with_meter() -> int:
            meter = NvmlMeter([0], sample_interval_ms=100)
            meter.start()
            meter.begin_window()
            n = backend.generate(prompts, timed=True).output_tokens
            backend.synchronize()
            meter.end_window()
            meter.stop()
            return n

        def without() -> int:
            n = backend.generate(prompts, timed=True).output_tokens
            backend.synchronize()
            return n

        def plain() -> int:
            return _plain_generate(backend, prompts)

        if i % 2 == 0:  # A B, then B A: neither side always runs first
            a, b = _timed(with_meter), _timed(without)
            h, p = _timed(without), _timed(plain)
        else:
            b, a = _timed(without), _timed(with_meter)
            p, h = _timed(plain), _timed(without)
        sampler_ratios.append(a / b)
        plain_ratios.append(h / p)
        print(
            f"[overhead] pair {i}: sampler on/off {a / b:.4f}, harness/plain {h / p:.4f} "
            f"({p:.0f} tok/s plain)",
            flush=True,
        )
    out["overhead"] = {
        "pairs": pairs,
        "sampler_on_over_off_median": statistics.median(sampler_ratios),
        "harness_over_plain_median": statistics.median(plain_ratios),
        "sampler_ratios": sampler_ratios,
        "plain_ratios": plain_ratios,
    }
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sections", default="repeat,energy,overhead")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads(N) before anything runs (0: leave it)",
    )
    parser.add_argument(
        "--pin-cpus",
        type=int,
        default=0,
        help="pin the process to its first N allowed CPUs (0: no pinning)",
    )
    parser.add_argument(
        "--cpus",
        default="",
        help="pin the process to these CPUs, e.g. 8-11 or 4,5,6 (overrides --pin-cpus)",
    )
    parser.add_argument(
        "--prompts-scale",
        type=int,
        default=1,
        help="repeat section: multiply n_prompts (the measured window) by N",
    )
    parser.add_argument(
        "--fresh-process",
        action="store_true",
        help="repeat section: each repeat in its own `python -m llem_harness run` process",
    )
    parser.add_argument(
        "--configs",
        default="8:static,8:dynamic,32:static",
        help="batch:cache pairs for the repeat section",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_validation.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    global SAVE
    SAVE = lambda data: path.write_text(json.dumps(data, indent=2))  # noqa: E731
    import os

    if args.cpus:
        cpus: set[int] = set()
        for part in args.cpus.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, cpus)
        out["pinned_cpus"] = sorted(os.sched_getaffinity(0))
    elif args.pin_cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.pin_cpus])
        out["pinned_cpus"] = sorted(os.sched_getaffinity(0))
    out["pytorch_cuda_alloc_conf"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
        out["torch_threads"] = args.torch_threads
    if not args.fresh_process:  # a fresh-process parent keeps CUDA (and its idle state) off
        out["device"] = torch.cuda.get_device_name(0)
    out["torch"] = torch.__version__
    configs = [(int(b), c) for b, c in (x.split(":") for x in args.configs.split(","))]
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        {
            "repeat": lambda: section_repeat(
                out, args.repeats, configs, args.prompts_scale, args.fresh_process
            ),
            "energy": lambda: section_energy(out, args.windows),
            "overhead": lambda: section_overhead(out, args.pairs),
        }[name]()
        out.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        path.write_text(json.dumps(out, indent=2))
        print(f"== {name} done in {out['section_seconds'][name]} s", flush=True)


if __name__ == "__main__":
    main()
