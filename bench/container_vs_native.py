"""Container ÷ native for one study point, from paired runs (issue 28's measurement).

    python3 bench/container_vs_native.py RESULTS_DIR [--json OUT]

RESULTS_DIR holds one folder per `llem-docker run` of the same study, as
bench/gpu_container_session.sh writes them: `<k>_<runner>/<study>_<UTC>/`, where k is the order
of the call and runner is `docker`, `apptainer` or `local`. Runs are paired in call order: the
i-th container run with the i-th native (local) run, so ABBA order (C N N C C N) pairs
neighbours. For each metric the script prints the mean of the paired ratios, their sample
standard deviation, min and max, and the ratio of the means beside it; each run's own figures
and warnings go to --json. No figure is invented: a run without the metric is left out of its
pairs, and the count of pairs is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

METRICS = {
    "J/output token": lambda r: r.get("energy_per_output_token_j"),
    "tokens/s": lambda r: r.get("throughput_tokens_per_s"),
    "idle baseline W": lambda r: (r.get("energy") or {}).get("baseline_power_w"),
    "window s": lambda r: r.get("duration_s"),
    "mean power W": lambda r: _mean_power(r),
}


def _mean_power(r: dict[str, Any]) -> float | None:
    total, window = (r.get("energy") or {}).get("total_j"), r.get("duration_s")
    return total / window if total is not None and window else None


def load(root: Path) -> dict[str, list[dict[str, Any]]]:
    """{runner: [result, ...]} in call order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for call in sorted(root.iterdir(), key=lambda p: int(p.name.split("_")[0])):
        if not call.is_dir() or "_" not in call.name:
            continue
        runner = call.name.split("_", 1)[1]
        for result in sorted(call.glob("*/runs/*/result.json")):
            res = json.loads(result.read_text())
            res["_call"] = call.name
            out.setdefault(runner, []).append(res)
    return out


def compare(runs: dict[str, list[dict[str, Any]]], container: str) -> dict[str, Any]:
    native = runs.get("local", [])
    boxed = runs.get(container, [])
    table: dict[str, Any] = {}
    for name, get in METRICS.items():
        pairs = [
            (get(c), get(n))
            for c, n in zip(boxed, native, strict=False)
            if get(c) is not None and get(n)
        ]
        ratios = [c / n for c, n in pairs]
        if not ratios:
            table[name] = {"pairs": 0, "reason": "no pair has this figure"}
            continue
        table[name] = {
            "pairs": len(ratios),
            "ratios": ratios,
            "mean_ratio": statistics.fmean(ratios),
            "sd_ratio": statistics.stdev(ratios) if len(ratios) > 1 else None,
            "min_ratio": min(ratios),
            "max_ratio": max(ratios),
            "container_mean": statistics.fmean(c for c, _ in pairs),
            "native_mean": statistics.fmean(n for _, n in pairs),
        }
    return table


def describe(res: dict[str, Any]) -> dict[str, Any]:
    env = res.get("environment") or {}
    return {
        "call": res["_call"],
        "runner": res["runner"],
        "gpus": [(g.get("index"), g.get("uuid"), g.get("name")) for g in env.get("gpus") or []],
        "cuda_visible_devices": env.get("cuda_visible_devices"),
        **{k: f(res) for k, f in METRICS.items()},
        "warnings": res.get("warnings"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = load(args.root)
    report: dict[str, Any] = {"runs": [describe(r) for rs in runs.values() for r in rs]}
    for container in ("docker", "apptainer"):
        if not runs.get(container):
            continue
        table = compare(runs, container)
        report[container] = table
        counts = f"{len(runs[container])} vs {len(runs.get('local', []))} runs"
        print(f"\n{container} ÷ local ({counts})")
        print(f"{'metric':<18}{'pairs':>6}{'mean ratio':>12}{'sd':>9}{'min':>9}{'max':>9}")
        for name, row in table.items():
            if not row["pairs"]:
                print(f"{name:<18}{0:>6}  {row['reason']}")
                continue
            sd = f"{row['sd_ratio']:.4f}" if row["sd_ratio"] is not None else "-"
            print(
                f"{name:<18}{row['pairs']:>6}{row['mean_ratio']:>12.4f}{sd:>9}"
                f"{row['min_ratio']:>9.4f}{row['max_ratio']:>9.4f}"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
