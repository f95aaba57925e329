"""Measured share of wall time: how much of each run measures, per run and per study.

    python3 bench/measured_share.py STUDY_DIR [STUDY_DIR ...] [--json OUT]

Share = the measured window (result.json `duration_s`) ÷ the run's wall time (the manifest's
`started_at` → `ended_at`, which covers the process or container start, the idle baseline,
imports, load, warmup, the pass and the write). A study's share is Σ windows ÷ Σ walls over its
completed runs (gaps between runs excluded). Works on results of every schema version, so a
study from an older checkout compares with one from this; where a result has a `timing`
block (schema ≥ 1.2), the mean seconds per phase are printed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

PHASES = ("startup_s", "baseline_s", "imports_s", "overlapped_s", "load_s", "warmup_s")


def runs(study: Path) -> list[dict[str, Any]]:
    manifest = json.loads((study / "manifest.json").read_text())
    out = []
    for run in manifest["runs"]:
        result = study / "runs" / run["run_id"] / "result.json"
        if run["state"] != "completed" or not result.exists():
            continue
        res = json.loads(result.read_text())
        wall = (
            datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])
        ).total_seconds()
        cfg = res["config"]
        engine = cfg.get("vllm") or {}
        concurrency = (
            f"max_num_seqs {engine.get('max_num_seqs')}"
            if cfg["backend"] == "vllm"
            else f"batch {cfg.get('batch_size')}"
        )
        if engine.get("tensor_parallel_size", 1) > 1:
            concurrency += f" tp{engine['tensor_parallel_size']}"
        out.append(
            {
                "run_id": run["run_id"],
                "cycle": run["cycle"],
                "point": f"{cfg['backend']} {concurrency}",
                "wall_s": wall,
                "window_s": res["duration_s"],
                "share": res["duration_s"] / wall,
                "timing": res.get("timing"),
            }
        )
    return out


def summary(study: Path) -> dict[str, Any]:
    rs = runs(study)
    walls, windows = sum(r["wall_s"] for r in rs), sum(r["window_s"] for r in rs)
    phases: dict[str, float] = {}
    timed = [r["timing"] for r in rs if r["timing"]]
    for p in PHASES:
        values = [t[p] for t in timed if t.get(p) is not None]
        if values:
            phases[p] = statistics.fmean(values)
    return {
        "study": str(study),
        "runs": rs,
        "wall_s": walls,
        "window_s": windows,
        "share": windows / walls if walls else None,
        "mean_phase_s": phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = [summary(s) for s in args.studies]
    for s in out:
        print(f"{s['study']}: {len(s['runs'])} runs")
        for r in s["runs"]:
            print(
                f"  c{r['cycle']} {r['point']:<26} wall {r['wall_s']:6.1f} s  "
                f"window {r['window_s']:6.1f} s  share {r['share']:6.1%}"
            )
        phases = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in s["mean_phase_s"].items())
        share = "n/a" if s["share"] is None else f"{s['share']:.1%}"
        print(
            f"  study: window {s['window_s']:.1f} s of wall {s['wall_s']:.1f} s = {share}"
            + (f"; mean phases (s): {phases}" if phases else "")
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
