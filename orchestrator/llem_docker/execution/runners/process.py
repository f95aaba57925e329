"""The harness as a child process in its own session (process group): the part the local and
apptainer runners share.

Ctrl+C in the terminal reaches only the orchestrator; a timeout or an interrupt SIGTERMs the
whole group (the harness gets `grace_s` to write error.json), then SIGKILLs whatever is left,
grandchildren included. stdout+stderr go to container.log; JSON progress lines to `on_event`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from llem_docker.execution.runners.base import EventHandler, RunOutcome
from llem_docker.execution.runners.stream import Events, drain, follow, pump
from llem_harness.host_api import LOG_FILE

READER_JOIN_S = 5.0


def run_process(
    argv: Sequence[str],
    run_dir: Path,
    *,
    env: Mapping[str, str],
    timeout_s: float,
    on_event: EventHandler,
    grace_s: float = 5.0,
) -> RunOutcome:
    """Run `argv` to the end (or the timeout, or Ctrl+C); the RunOutcome says which."""
    log = (run_dir / LOG_FILE).open("w", encoding="utf-8")
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env),
        )
    except OSError as exc:
        log.write(f"llem-docker: could not start {argv[0]}: {exc}\n")
        log.close()
        return RunOutcome(exit_code=None, detail=f"could not start {argv[0]}: {exc}")
    assert proc.stdout is not None
    lines: Events = queue.Queue()
    reader = threading.Thread(
        target=_pump, args=(proc.stdout, log, lines), name="llem-process-reader", daemon=True
    )
    timed_out = interrupted = False
    try:
        reader.start()
        timed_out, interrupted = follow(
            lines,
            on_event,
            running=lambda: not _exited(proc),
            stop=lambda: _stop(proc, grace_s),
            timeout_s=timeout_s,
        )
    finally:
        _killpg(proc, signal.SIGKILL)  # whatever is left of the group, leader included
        _wait(proc)
        if reader.ident is not None:
            reader.join(READER_JOIN_S)
        else:  # interrupted before the reader started: nothing else will close them
            proc.stdout.close()
            log.close()
    if not interrupted:
        drain(lines, on_event)
    return _outcome(proc.returncode, timed_out, interrupted, timeout_s)


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the group, give it `grace_s` to write error.json, then SIGKILL it."""
    _killpg(proc, signal.SIGTERM)
    end = time.monotonic() + grace_s
    try:
        while time.monotonic() < end and not _exited(proc):
            time.sleep(0.05)
    except KeyboardInterrupt:  # a second Ctrl+C: no more grace
        pass
    _killpg(proc, signal.SIGKILL)


def _pump(stream: IO[bytes], log: IO[str], events: Events) -> None:
    """Reader thread: the child's stdout, line by line, into container.log and `events`."""
    try:
        pump(iter(stream.readline, b""), log, events)
    finally:
        log.close()
        stream.close()


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """True once the leader has exited, without reaping it: its pid (= the group id) stays
    reserved, so signalling the group afterwards cannot hit an unrelated process."""
    if not hasattr(os, "waitid"):  # macOS: poll() reaps, and _killpg then stands down
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.returncode is not None:  # reaped: the group id may no longer be ours
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _wait(proc: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:  # the group is already SIGKILLed; reaping takes a moment
            continue


def _outcome(rc: int | None, timed_out: bool, interrupted: bool, timeout_s: float) -> RunOutcome:
    detail: str | None = None
    code = rc
    if rc is not None and rc < 0:  # killed by a signal: report it the way shells and docker do
        code = 128 - rc
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        detail = f"killed by {name}"
        if -rc == signal.SIGKILL and not (timed_out or interrupted):
            detail += " (not by llem-docker; the kernel's OOM killer is a common cause)"
    if timed_out:
        detail = f"timed out after {timeout_s:g} s; process group killed"
    elif interrupted:
        detail = "interrupted (Ctrl+C); process group killed"
    return RunOutcome(exit_code=code, timed_out=timed_out, interrupted=interrupted, detail=detail)
