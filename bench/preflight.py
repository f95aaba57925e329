"""How fast the dry run refuses a broken input (issue 34, item 2), and that a large dataset is
streamed, not held whole.

    .venv/bin/python bench/preflight.py [--repeats 5] [--big-mb 200]

For each kind of bad input, a study file naming it goes through the real console script
(`llem-docker run FILE --dry-run`, exit 2): wall time, mean and sd over the repeats, beside
`llem-docker --version` for the start-up alone. Then the check itself, in-process
(`execution/preflight.check_inputs`), on the small files and on a generated JSONL dataset of
`--big-mb` MB whose last line is bad: its time, and the process's peak RSS before and after
(ru_maxrss), which stays far below the file's size when the file is streamed.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("llem-docker"))
HEAD = "name: t\nmodel: llem/tiny-llama\nbackend: pytorch\n"
GOOD = b'{"prompt": "a"}\n'
CASES: dict[str, tuple[str, dict[str, bytes]]] = {
    "not JSON (line 3)": ("dataset: d.jsonl\n", {"d.jsonl": GOOD * 2 + b"{oops\n"}),
    "not UTF-8 (line 2)": ("dataset: d.jsonl\n", {"d.jsonl": GOOD + b'{"prompt": "\xff"}\n'}),
    "no prompt (line 2)": ("dataset: d.jsonl\n", {"d.jsonl": GOOD + b'{"q": "b"}\n'}),
    "hf: dataset not cached": ("dataset: 'hf:nobody/nothing'\n", {}),
    "n_prompts 3e9": ("n_prompts: 3000000000\n", {}),
    "local model path missing": ("", {}),
}


def _study(folder: Path, body: str, files: dict[str, bytes], name: str) -> Path:
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    head = HEAD.replace("llem/tiny-llama", "./no-model") if "model path" in name else HEAD
    path = folder / "study.yaml"
    path.write_text(head + body)
    return path


def _wall(cmd: list[str], repeats: int) -> tuple[float, float, int]:
    times, code = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        code = subprocess.run(cmd, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - t0)
    return statistics.mean(times), statistics.stdev(times) if len(times) > 1 else 0.0, code


def _in_process(path: Path, repeats: int) -> list[float]:
    from llem_docker.errors import ConfigError
    from llem_docker.execution.preflight import check_inputs
    from llem_docker.study.loader import load_study
    from llem_docker.study.plan import plan_study

    out = []
    for _ in range(repeats):
        study = load_study(path)
        plan = plan_study(study)
        t0 = time.perf_counter()
        with contextlib.suppress(ConfigError):
            check_inputs(plan, study, path.parent / "hub")
        out.append(time.perf_counter() - t0)
    return out


def _big(folder: Path, megabytes: int) -> Path:
    line = b'{"prompt": "' + b"x" * 100 + b'"}\n'
    data = folder / "big.jsonl"
    with data.open("wb") as fh:
        for _ in range(megabytes * 1024 * 1024 // len(line)):
            fh.write(line)
        fh.write(b"{oops\n")
    return _study(folder, "dataset: big.jsonl\n", {}, "big")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big-mb", type=int, default=200)
    args = ap.parse_args()
    mean, sd, _ = _wall([EXE, "--version"], args.repeats)
    print(f"{'llem-docker --version (start-up)':36} {mean:6.3f} s (sd {sd:.3f})")
    print(f"{'input':36} {'CLI mean':>8} {'sd':>6} {'exit':>4} {'check alone (ms)':>18}")
    for name, (body, files) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = _study(Path(tmp), body, files, name)
            mean, sd, code = _wall([EXE, "run", str(path), "--dry-run", "--runner", "local"],
                                   args.repeats)  # fmt: skip
            alone = statistics.mean(_in_process(path, args.repeats)) * 1000
            print(f"{name:36} {mean:8.3f} {sd:6.3f} {code:4d} {alone:18.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = _big(Path(tmp), args.big_mb)
        size = (Path(tmp) / "big.jsonl").stat().st_size / 1e6
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        took = _in_process(path, 1)[0]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss = f"peak RSS {before:.0f} MB before, {after:.0f} MB after"
        print(
            f"{size:.0f} MB dataset, bad last line: check {took:.2f} s "
            f"({size / took:.0f} MB/s); {rss}"
        )


if __name__ == "__main__":
    main()
