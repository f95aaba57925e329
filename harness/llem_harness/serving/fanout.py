"""The load generator's several senders (`loadgen.py --senders N`, N > 1). One Python process
keeps its schedule only up to a few thousand requests/s (docs/serving.md), so the load is
split between N sender processes, each `python -I loadgen.py` over its share, and the parent
(the `loadgen.py` the harness started) merges what they record. The standard library only:
loadgen.py loads this file by path.

- **Split**: round-robin in due order (sender k gets the k-th, (k+N)-th, ... request due), so
  each sender keeps the arrival pattern at 1/N of the rate. A `--max-concurrency` cap C is
  divided between them (C // N each, one more for the first C % N): a due request waits for a
  slot of its own sender's share, and the senders together hold at most C in flight.
- **One start**: each sender reads its share, prints `ready`, and waits on stdin; once all
  are ready the parent sends every one the same instant, `LEAD_S` ahead on
  `time.monotonic()` (system-wide on Linux), so the due times are those of one sender.
- **Merge**: every request has exactly one record, written in the input's order as one sender
  writes them; `cpu_s` is every sender's load CPU time plus the parent's own over the load.
- **Failure**: a sender that exits non-zero, or stops before it is ready, fails the load
  (RuntimeError with its stderr's end); the others are killed. A sender gets SIGKILL from
  the kernel if the parent dies (PR_SET_PDEATHSIG, as serving/server.py sets for the server),
  so none outlives a parent the harness killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from llem_harness.serving.loadgen import RequestSpec

LEAD_S = 0.1  # from the last sender's "ready" to the shared start: the start's delivery
POLL_S = 0.05  # how often the parent looks for a sender that ended
READY = "ready"

T = TypeVar("T", bound="RequestSpec")


def split(specs: Sequence[T], n: int) -> list[list[T]]:
    """Round-robin in due order (ties in input order): n shares, each in due order."""
    order = sorted(range(len(specs)), key=lambda i: specs[i].arrival_s)
    return [[specs[i] for i in order[k::n]] for k in range(n)]


def shares(cap: int | None, n: int) -> list[int | None]:
    """A concurrency cap divided between n senders (the first `cap % n` get one more)."""
    if cap is None:
        return [None] * n
    if cap < n:
        raise ValueError(f"a cap of {cap} cannot give each of {n} senders a slot")
    return [cap // n + (1 if k < cap % n else 0) for k in range(n)]


def merge(specs: Sequence[RequestSpec], parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every sender's records in the specs' order; a RuntimeError where a request has no
    record, more than one, or a record names no request of the load."""
    position = {s.id: i for i, s in enumerate(specs)}
    merged: list[dict[str, Any] | None] = [None] * len(specs)
    for records in parts:
        for r in records:
            i = position.get(r["id"])
            if i is None or merged[i] is not None:
                raise RuntimeError(f"a sender recorded request {r['id']!r} twice or unasked")
            merged[i] = r
    missing = [specs[i].id for i, r in enumerate(merged) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} request(s) without a record, e.g. ids {missing[:5]}")
    return [r for r in merged if r is not None]


def sender_options(args: argparse.Namespace) -> list[str]:
    """loadgen.py's options every sender gets (its requests, output and cap aside)."""
    options = ["--url", args.url, "--model", args.model, "--timeout-s", repr(args.timeout_s)]
    options += ["--extra-json", args.extra_json] if args.extra_json is not None else []
    return options + (["--keep-text"] if args.keep_text else [])


def wait_for_start() -> float:
    """In a sender: say it is ready, then read the shared start from stdin (a ValueError when
    none comes: the parent is gone)."""
    print(READY, flush=True)
    line = sys.stdin.readline()
    try:
        return float(line)
    except ValueError:
        raise ValueError(f"no start instant on stdin (got {line[:80]!r})") from None


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: SIGKILL the sender when `parent` dies (Linux; elsewhere nothing is set),
    and end it at once if the parent died before that was set."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def preexec() -> None:
        if prctl is not None:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _spawn(
    loadgen: Path, folder: Path, k: int, part: list[RequestSpec], cap: int | None, opts: list[str]
) -> subprocess.Popen[bytes]:
    requests = folder / f"requests{k}.jsonl"
    requests.write_text("".join(json.dumps(s.__dict__) + "\n" for s in part), encoding="utf-8")
    cmd = [sys.executable, "-I", str(loadgen), *opts, "--requests", str(requests)]
    cmd += ["--out", str(folder / f"out{k}.jsonl"), "--start-on-stdin"]
    cmd += ["--max-concurrency", str(cap)] if cap is not None else []
    with (folder / f"err{k}.txt").open("wb") as err:
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            preexec_fn=_die_with_parent(os.getpid()),
        )  # fmt: skip


def _failed(procs: list[subprocess.Popen[bytes]], k: int, folder: Path, what: str) -> RuntimeError:
    code = procs[k].wait()
    err = (folder / f"err{k}.txt").read_text(encoding="utf-8", errors="replace").strip()
    return RuntimeError(
        f"sender {k + 1} of {len(procs)} {what} (exit {code}): {err[-2000:] or '(no output)'}"
    )


def _start(procs: list[subprocess.Popen[bytes]], folder: Path) -> float:
    """Wait until every sender is ready, then send them all one start instant."""
    for k, p in enumerate(procs):
        assert p.stdout is not None
        if p.stdout.readline().decode(errors="replace").strip() != READY:
            raise _failed(procs, k, folder, "stopped before it was ready")
    start = time.monotonic() + LEAD_S
    for k, p in enumerate(procs):
        stdin: IO[bytes] | None = p.stdin
        assert stdin is not None
        try:
            stdin.write(f"{start!r}\n".encode())
            stdin.close()
        except BrokenPipeError:
            raise _failed(procs, k, folder, "stopped before the start") from None
    return start


def _finish(procs: list[subprocess.Popen[bytes]], folder: Path) -> list[dict[str, Any]]:
    """Each sender's summary once all have ended; the first to fail fails the load."""
    pending = set(range(len(procs)))
    while pending:
        for k in sorted(pending):
            code = procs[k].poll()
            if code is not None and code != 0:
                raise _failed(procs, k, folder, "failed")
            if code is not None:
                pending.discard(k)
        if pending:
            time.sleep(POLL_S)
    summaries = []
    for k, p in enumerate(procs):
        assert p.stdout is not None
        lines = p.stdout.read().decode(errors="replace").strip().splitlines()
        try:
            summaries.append(json.loads(lines[-1]))
        except (IndexError, ValueError):
            raise _failed(procs, k, folder, "ended without its summary") from None
    return summaries


def run_senders(
    loadgen: Path, specs: Sequence[RequestSpec], n: int, args: argparse.Namespace
) -> tuple[float, float, float, list[dict[str, Any]]]:
    """Run the load over n senders: (start, end, cpu_s, records in the specs' order). A
    RuntimeError when a sender fails (the others killed first)."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix=".senders-", dir=args.out.parent) as tmp:
        folder = Path(tmp)
        try:
            caps = shares(args.max_concurrency, n)
            for k, part in enumerate(split(specs, n)):
                procs.append(_spawn(loadgen, folder, k, part, caps[k], sender_options(args)))
            cpu0 = time.process_time()  # the parent's own over the load
            start = _start(procs, folder)
            summaries = _finish(procs, folder)
            cpu = time.process_time() - cpu0 + sum(float(s["cpu_s"]) for s in summaries)
            parts = [
                [json.loads(line) for line in (folder / f"out{k}.jsonl").read_text().splitlines()]
                for k in range(n)
            ]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
                for pipe in (p.stdin, p.stdout):
                    if pipe is not None:
                        with contextlib.suppress(OSError):
                            pipe.close()
    return start, max(float(s["end_s"]) for s in summaries), cpu, merge(specs, parts)
