"""Time expansion + validation of a 10,000-run study (issue target: under 2 s on 2 cores).

Usage: python bench/expand.py [--repeats N]
Writes the generated study to a temp dir, then times load_study (YAML + validation of every
sweep value) and plan_study (expansion, full ExperimentConfig validation and hashing of every
point, scheduling) together.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study

STUDY = """\
name: bench-10k
model: meta-llama/Llama-3.1-8B
backend: [pytorch, vllm]
weights: dummy
sweep:
  batch_size: [{batch}]
  max_output_tokens: [{tokens}]
  pytorch.attn_implementation: [sdpa, eager]
  vllm.enforce_eager: [true, false]
execution: {{n_cycles: 2, cycle_order: shuffled}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    body = STUDY.format(
        batch=", ".join(str(i) for i in range(1, 51)),
        tokens=", ".join(str(16 * i) for i in range(1, 26)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-10k.yaml"
        path.write_text(body)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            plan = plan_study(load_study(path))
            times.append(time.perf_counter() - t0)
    assert len(plan.runs) == 10_000, len(plan.runs)
    print(f"configs={len(plan.points)} runs={len(plan.runs)} repeats={args.repeats}")
    print(
        f"load+validate+expand: median {statistics.median(times):.3f}s "
        f"min {min(times):.3f}s max {max(times):.3f}s (target < 2 s)"
    )


if __name__ == "__main__":
    main()
