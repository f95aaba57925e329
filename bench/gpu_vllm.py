"""vLLM on a GPU: the harness's cost against a plain `LLM.generate` loop, and its timeline.

    python3 bench/gpu_vllm.py --out DIR [--sections harness,overhead] [--rounds 3]
                              [--variants plain_off,harness,plain_on]

Needs an NVIDIA GPU with NVML and vLLM; runs natively (no Docker). About 8 minutes on an
H200 with the defaults (harness ~2.5 min, overhead ~5.5 min). Writes DIR/gpu_vllm.json as
each section finishes, and prints one table at the end.

Sections:
  harness   one full harness run (`python -m llem_harness.cli run`, a fresh process, as the
            local runner starts it) with `measurement.window: steady_state` and a persistent
            engine cache: result.json with its `timing` block, and the measured pass's
            per-request timeline (requests.parquet) in DIR/harness_run/.
  overhead  one process, two engines (each 0.42 of the GPU's memory), the same prompts, N
            interleaved rounds (the order rotates each round) of:
              plain_off  `LLM.generate` on the harness's own engine (disable_log_stats=True)
              harness    the harness's measured pass on that engine (VLLMBackend.generate,
                         timed: its token-time tap installed; the cyclic GC off during
                         the pass and collected outside the energy window, as run.py does.
                         The first lease of 2026-11-30 collected inside the window, twice)
              plain_on   `LLM.generate` on a twin engine with disable_log_stats=False (what
                         the harness used before, to get per-request stats)
            `--variants` picks which (plain_on's twin engine is only built when it is
            picked). Each pass is one NVML energy window. Target: harness / plain_off >= 0.98 for
            tok/s and within 2% for J/token. The last harness pass's per-request timeline
            goes to DIR/requests.parquet (+ requests_meta.json), with the steady window by
            the old in-flight rule and by the new queue rule.
Model: Llama-3.2-1B shapes with random weights, bf16, 3200 synthetic prompts of 128 tokens,
128 output tokens, max_num_seqs 64.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "harness"))
sys.path.insert(0, str(REPO / "bench"))

from gpu_validation import MODEL, _harness_run, cv  # noqa: E402

from llem_harness.caches import configure_compile_caches  # noqa: E402
from llem_harness.config import ExperimentConfig  # noqa: E402
from llem_harness.contract import MeasurementSettings, standalone_request  # noqa: E402
from llem_harness.steady import Span, steady_window, write_requests  # noqa: E402

N_PROMPTS, N_IN, N_OUT, SEQS = 3200, 128, 128, 64


def config(gpu_mem: float, warmup: tuple[int, int] = (2, 3)) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": MODEL,
            "backend": "vllm",
            "weights": "dummy",
            "precision": "bf16",
            "dataset": "synthetic",
            "n_prompts": N_PROMPTS,
            "max_input_tokens": N_IN,
            "max_output_tokens": N_OUT,
            "warmup_runs": warmup[0],
            "warmup_max_runs": warmup[1],
            "warmup_cv_threshold": 0.02,
            "vllm": {"max_num_seqs": SEQS, "gpu_memory_utilization": gpu_mem},
        }
    )


def save(out: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(out, indent=2))


def section_harness(out: dict[str, Any], dest: Path) -> None:
    """A full harness run in a fresh process: result.json, timing, requests.parquet."""
    run_dir = dest / "harness_run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    req = standalone_request(
        config(0.9),
        run_id="gpu-vllm-harness",
        measurement=MeasurementSettings(
            energy_backend="nvml", baseline_seconds=3.0, window="steady_state"
        ),
    )
    (run_dir / "experiment.json").write_text(req.model_dump_json())
    if _harness_run(run_dir, fresh=True) != 0:
        raise SystemExit((run_dir / "error.json").read_text())
    res = json.loads((run_dir / "result.json").read_text())
    out["harness"] = {
        k: res[k]
        for k in (
            "duration_s",
            "throughput_tokens_per_s",
            "energy_per_output_token_j",
            "latency",
            "steady_state",
            "timing",
            "requests",
            "warmup",
            "warnings",
        )
    } | {"compile_caches": res["environment"].get("compile_caches")}


def inflight_window(spans: list[Span], concurrency: int) -> tuple[float, float] | None:
    """The old rule, for comparison: from `concurrency` requests in flight to the first dip."""
    events = sorted([(f, 1) for f, _, _ in spans] + [(last, -1) for _, last, _ in spans])
    in_flight, start = 0, None
    for t, step in events:
        in_flight += step
        if start is None and in_flight >= concurrency:
            start = t
        elif start is not None and in_flight < concurrency:
            return (start, t) if t > start else None
    return None


def section_overhead(out: dict[str, Any], dest: Path, rounds: int, picked: list[str]) -> None:
    from vllm import LLM
    from vllm.inputs import TokensPrompt

    from llem_harness.backends.vllm.backend import VLLMBackend
    from llem_harness.datasets import load_prompt_ids
    from llem_harness.energy.nvml import NvmlMeter
    from llem_harness.run import quiet_gc

    cfg = config(0.42)
    backend = VLLMBackend()
    backend.load(cfg, dest)
    prompts = load_prompt_ids(cfg, backend.tokenize, backend.vocab_size, dest)
    twin = (
        LLM(**(backend.engine_args | {"disable_log_stats": False}))
        if "plain_on" in picked
        else None
    )
    params = backend._params()
    token_prompts = [TokensPrompt(prompt_token_ids=p) for p in prompts]
    last_pass: dict[str, Any] = {}

    def plain(llm: Any) -> int:
        outs = llm.generate(token_prompts, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outs)

    def harness() -> int:
        res = backend.generate(prompts, timed=True)
        last_pass["res"] = res
        return res.output_tokens

    every: dict[str, Callable[[], int]] = {
        "plain_off": lambda: plain(backend.llm),
        "harness": harness,
        "plain_on": lambda: plain(twin),
    }
    variants = {name: every[name] for name in picked}
    for fn in variants.values():  # warm every path once (CUDA graphs, allocator)
        fn()
    meter = NvmlMeter([0], sample_interval_ms=100)
    meter.start()
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate: no variant always first
            # As run.py measures: the harness's pass runs with the cyclic GC off, collected
            # just before the window opens and after it closes (outside it).
            with quiet_gc() if name == "harness" else contextlib.nullcontext():
                meter.begin_window()
                t0 = time.perf_counter()
                tokens = variants[name]()
                seconds = time.perf_counter() - t0
                reading = meter.end_window()
            joules = reading.total_j or float("nan")
            rows[name].append(
                {"tok_s": tokens / seconds, "j_tok": joules / tokens, "seconds": seconds}
            )
            print(
                f"[overhead] round {r} {name}: {tokens / seconds:.0f} tok/s, "
                f"{joules / tokens:.5f} J/token",
                flush=True,
            )
    meter.stop()
    summary: dict[str, Any] = {}
    for name, rs in rows.items():
        tps, jpt = [x["tok_s"] for x in rs], [x["j_tok"] for x in rs]
        summary[name] = {
            "tok_s_median": statistics.median(tps),
            "tok_s_cv": cv(tps),
            "j_tok_median": statistics.median(jpt),
            "j_tok_cv": cv(jpt),
            "runs": rs,
        }
    # Paired ratios: harness / plain_off within each round.
    pairs = list(zip(rows["harness"], rows["plain_off"], strict=True))
    summary["harness_over_plain_off"] = {
        "tok_s_median": statistics.median(h["tok_s"] / p["tok_s"] for h, p in pairs),
        "j_tok_median": statistics.median(h["j_tok"] / p["j_tok"] for h, p in pairs),
    }
    res = last_pass["res"]
    write_requests(dest / "requests.parquet", res.spans, res.submitted, min(res.submitted))
    old, new = inflight_window(res.spans, SEQS), steady_window(res.spans, SEQS)
    whole = max(s[1] for s in res.spans) - min(res.submitted)
    timeline = {
        "concurrency": SEQS,
        "n_prompts": len(res.spans),
        "source": "bench/gpu_vllm.py overhead: the last harness pass (disable_log_stats=True)",
        "latency_mode": backend.latency_mode,
        "pass_s": whole,
        "old_inflight_window_s": None if old is None else old[1] - old[0],
        "new_queue_window_s": None if new is None else new[1] - new[0],
    }
    (dest / "requests_meta.json").write_text(json.dumps(timeline, indent=2))
    summary["timeline"] = timeline
    out["overhead"] = summary
    twin_core = getattr(twin.llm_engine, "engine_core", None) if twin is not None else None
    if twin_core is not None:
        twin_core.shutdown()
    backend.close()


def table(out: dict[str, Any]) -> str:
    lines = []
    if "harness" in out:
        h = out["harness"]
        t, s = h["timing"] or {}, h["steady_state"] or {}
        lines += [
            "harness run (fresh process, steady_state):",
            f"  {h['throughput_tokens_per_s']:.0f} tok/s, {h['energy_per_output_token_j']:.5f} "
            f"J/token over {h['duration_s']:.1f} s; steady window {s.get('duration_s') or 0:.1f}"
            f" s, {s.get('energy_per_output_token_j') or float('nan'):.5f} J/token",
            "  timing (s): "
            + ", ".join(
                f"{k[:-2]} {v:.1f}" for k, v in t.items() if k.endswith("_s") and v is not None
            ),
        ]
    if "overhead" in out:
        o = out["overhead"]
        lines += ["", f"{'variant':<10} {'tok/s':>9} {'CV':>6} {'J/token':>9} {'CV':>6}"]
        for name in ("plain_off", "harness", "plain_on"):
            if name not in o:
                continue
            v = o[name]
            lines.append(
                f"{name:<10} {v['tok_s_median']:>9.0f} {v['tok_s_cv']:>6.2%} "
                f"{v['j_tok_median']:>9.5f} {v['j_tok_cv']:>6.2%}"
            )
        r = o["harness_over_plain_off"]
        ok_t, ok_j = r["tok_s_median"] >= 0.98, abs(r["j_tok_median"] - 1) <= 0.02
        tl = o["timeline"]
        lines += [
            f"harness / plain_off: tok/s {r['tok_s_median']:.4f} ({'PASS' if ok_t else 'FAIL'}"
            f" >= 0.98), J/token {r['j_tok_median']:.4f} ({'PASS' if ok_j else 'FAIL'} +-2%)",
            f"steady window of a {tl['pass_s']:.1f} s pass: old in-flight rule "
            f"{tl['old_inflight_window_s'] or 0:.2f} s, new queue rule "
            f"{tl['new_queue_window_s'] or 0:.2f} s",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sections", default="harness,overhead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="plain_off,harness,plain_on")
    parser.add_argument(
        "--engine-cache",
        type=Path,
        default=Path("~/.cache/llem/engines").expanduser(),
        help="persistent compile caches (as the runners mount it): $LLEM_ENGINE_CACHE",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LLEM_ENGINE_CACHE", str(args.engine_cache.absolute()))
    caches = configure_compile_caches()  # before vllm or torch is imported
    path = args.out / "gpu_vllm.json"
    out: dict[str, Any] = {"compile_caches": caches.model_dump(mode="json"), "section_seconds": {}}
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        if name == "harness":
            section_harness(out, args.out)
        elif name == "overhead":
            picked = args.variants.split(",")
            if not {"plain_off", "harness"} <= set(picked) <= {"plain_off", "harness", "plain_on"}:
                raise SystemExit("--variants: plain_off and harness, and optionally plain_on")
            section_overhead(out, args.out, args.rounds, picked)
        else:
            raise SystemExit(f"unknown section {name}")
        out["section_seconds"][name] = round(time.perf_counter() - t0, 1)
        save(out, path)
        print(f"== {name} done in {out['section_seconds'][name]} s", flush=True)
    import vllm

    out["vllm"] = vllm.__version__
    save(out, path)
    print("\n" + table(out), flush=True)


if __name__ == "__main__":
    main()
