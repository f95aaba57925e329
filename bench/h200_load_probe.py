"""Where a PyTorch run's load and first warmup pass spend their time on a GPU (issue 15).

Run on the lent H200 by `bench/h200_vllm_session.sh probe`. Prints, for Llama-3.2-1B shapes
with random weights in bf16:
- the import times of torch/transformers and of the modules `from_config` imports lazily;
- the CUDA context's creation;
- the model build as the harness did it (random init twice: nn.Linear's, then transformers'),
  profiled, and the build with one init (`no_init_weights`, then `init_weights`);
- the static-cache `generate` passes in fresh processes: cold compile cache, then warm (the
  warm first pass profiled), then with dynamo's `caching_precompile` cold and warm;
- what powercap (RAPL) offers this user.

    python3 bench/h200_load_probe.py [--skip-generate]
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "meta-llama/Llama-3.2-1B"


def top(prof: cProfile.Profile, key: str, n: int) -> str:
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(n)
    return "\n".join(line[:160] for line in buf.getvalue().splitlines()[: n + 12])


def build_probe() -> None:
    t = time.perf_counter()
    import torch
    import transformers

    t1 = time.perf_counter()
    import transformers.generation.utils
    import transformers.modeling_utils
    from transformers.models.llama import modeling_llama  # noqa: F401

    t2 = time.perf_counter()
    print(
        f"import torch+transformers {t1 - t:.2f}s; modeling_utils+generation+llama {t2 - t1:.2f}s"
    )
    sys.path.insert(0, str(ROOT / "harness"))
    from llem_harness.models import dummy_config

    t = time.perf_counter()
    avail = torch.cuda.is_available()
    t1 = time.perf_counter()
    torch.empty(1, device="cuda:0")
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    print(f"cuda.is_available {t1 - t:.2f}s ({avail}); context {t2 - t1:.2f}s")
    dev = torch.device("cuda:0")
    config = dummy_config(MODEL)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    with dev:
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    torch.cuda.synchronize()
    prof.disable()
    print(f"build A (as the harness did, first in the process) {time.perf_counter() - t:.2f}s")
    print(top(prof, "cumulative", 30))
    print(top(prof, "tottime", 15))
    del model
    torch.cuda.empty_cache()
    t = time.perf_counter()
    with dev:
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    torch.cuda.synchronize()
    print(f"build A again {time.perf_counter() - t:.2f}s")
    del model
    torch.cuda.empty_cache()
    from transformers import initialization

    t = time.perf_counter()
    with dev, initialization.no_init_weights():
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    t1 = time.perf_counter()
    model.init_weights()
    torch.cuda.synchronize()
    w = model.model.layers[0].self_attn.q_proj.weight.float()
    print(
        f"build B (one init) {time.perf_counter() - t:.2f}s (construct {t1 - t:.2f}s); "
        f"q_proj std {float(w.std()):.4f}"
    )


GEN = r"""
import os, sys, time, cProfile, pstats, io
import torch, transformers
sys.path.insert(0, sys.argv[1])
from llem_harness.models import dummy_config
if os.environ.get("PRECOMPILE"):
    torch._dynamo.config.caching_precompile = True
with torch.device("cuda:0"):
    cfg = dummy_config(sys.argv[2])
    m = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
m.eval()
ids = torch.randint(5, 1000, (8, 128), device="cuda:0")
prof = cProfile.Profile()
for i in range(3):
    torch.cuda.synchronize(); t = time.perf_counter()
    if i == 0 and os.environ.get("PROFILE"): prof.enable()
    with torch.no_grad():
        m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=128, min_new_tokens=128,
                   do_sample=False, cache_implementation="static")
    torch.cuda.synchronize()
    if i == 0 and os.environ.get("PROFILE"): prof.disable()
    print(f"  pass {i}: {time.perf_counter() - t:.2f}s", flush=True)
if os.environ.get("PROFILE"):
    buf = io.StringIO(); pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
    print("\n".join(l[:160] for l in buf.getvalue().splitlines()[:55]))
"""


def generate_probe() -> None:
    cache = Path("/tmp/probe-cache")
    runs = [
        ("cold compile cache", "inductor", {}),
        ("warm compile cache, first pass profiled", "inductor", {"PROFILE": "1"}),
        ("caching_precompile, cold", "precompile", {"PRECOMPILE": "1"}),
        ("caching_precompile, warm", "precompile", {"PRECOMPILE": "1"}),
    ]
    for label, sub, extra in runs:
        env = dict(
            os.environ,
            TORCHINDUCTOR_CACHE_DIR=str(cache / sub / "inductor"),
            TRITON_CACHE_DIR=str(cache / sub / "triton"),
            TORCHINDUCTOR_FX_GRAPH_CACHE="1",
            TORCHINDUCTOR_AUTOGRAD_CACHE="1",
            **extra,
        )
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", GEN, str(ROOT / "harness"), MODEL],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        print(f"{label}: process {time.perf_counter() - t:.1f}s, rc {proc.returncode}")
        print(proc.stdout)
        if proc.returncode:
            print(proc.stderr[-3000:])


def rapl_probe() -> None:
    print(f"uid {os.getuid()}")
    base = Path("/sys/class/powercap")
    if not base.exists():
        print("no /sys/class/powercap")
        return
    for zone in sorted(base.iterdir()):
        name = (zone / "name").read_text().strip() if (zone / "name").exists() else "?"
        energy = zone / "energy_uj"
        try:
            value = energy.read_text().strip()
        except OSError as exc:
            value = f"unreadable: {exc.__class__.__name__}: {exc}"
        print(f"{zone.name}: {name}: {value}")


def main() -> None:
    rapl_probe()
    build_probe()
    if "--skip-generate" not in sys.argv:
        generate_probe()


if __name__ == "__main__":
    main()
