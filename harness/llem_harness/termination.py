"""SIGTERM for the harness: the host's timeout, Ctrl+C, `scancel`.

The handler raises `Terminated` and also sets a flag. The raise alone is not enough, because
Python runs a handler inside whatever code is current. When that code is a finalizer
(`__del__`, e.g. a tokenizer's regex objects) or a library's broad `except`, the exception is
lost. `check_terminated()` re-raises from the flag. The harness calls it at every phase
change, after every warmup batch, before it writes the result, and the PyTorch backend calls
it between batches. A terminated run therefore never writes a result.json.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from types import FrameType
from typing import Any

MESSAGE = "terminated by SIGTERM (host timeout or interrupt)"
_TERM = threading.Event()


class Terminated(Exception):
    """SIGTERM (the host's timeout or Ctrl+C): recorded in error.json, then exit."""


def check_terminated() -> None:
    if _TERM.is_set():
        raise Terminated(MESSAGE)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _TERM.set()
    raise Terminated(MESSAGE)


def install() -> Any:
    """Clear the flag, install the handler, and return the previous one."""
    _TERM.clear()
    return signal.signal(signal.SIGTERM, _on_sigterm)


def restore(previous: Any) -> None:
    signal.signal(signal.SIGTERM, previous)


def communicate(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """The child's (stdout, stderr) once it ends; when the run ends first (a SIGTERM, Ctrl+C)
    the child is killed and reaped, so that it goes with the run."""
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return stdout or b"", stderr or b""


HOST_PID_ENV = "LLEM_HOST_PID"  # set by a runner that starts the harness as its own child


def die_with_parent() -> None:
    """In a child process, before it runs: SIGKILL it when its parent dies, whatever kills
    the parent (a runner's SIGKILL after its grace, a second Ctrl+C, a SIGKILL of llem-docker
    itself), so that nothing outlives its run. Linux only; elsewhere nothing is set."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tie_to_host() -> None:
    """Where the runner named itself (LLEM_HOST_PID: the local runner, whose harness is its
    own child), the harness dies with it; one whose host is already gone stops at once, so a
    killed llem-docker leaves no harness to write into the folder a resume makes next."""
    host = os.environ.get(HOST_PID_ENV, "")
    if not host.isdigit():
        return
    die_with_parent()
    if os.getppid() != int(host):  # the host died before the tie was made
        os._exit(1)
