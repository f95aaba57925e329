"""SIGTERM for the harness: the host's timeout, Ctrl+C, `scancel`.

The handler raises `Terminated` and also sets a flag. The raise alone is not enough, because
Python runs a handler inside whatever code is current. When that code is a finalizer
(`__del__`, e.g. a tokenizer's regex objects) or a library's broad `except`, the exception is
lost. `check_terminated()` re-raises from the flag. The harness calls it at every phase
change, after every warmup batch, before it writes the result, and the PyTorch backend calls
it between batches. A terminated run therefore never writes a result.json.
"""

from __future__ import annotations

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
