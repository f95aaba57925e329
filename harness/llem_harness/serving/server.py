"""The engine's own OpenAI-compatible server, started on loopback inside the run.

Each engine with a server builds its command (its EngineSpec's `server`, in its own package)
with the same engine settings as its offline backend. The server listens on 127.0.0.1
at a free port (no published port, no network), in a session of its own so that stopping it
ends its worker processes too, and writes its output to `server.log` in the run folder.

Start: the process is polled until `GET /health` answers 200; a server that exits, or does
not answer within `start_timeout_s`, is an error that quotes the log's tail. Stop: SIGINT
(the servers shut down cleanly on it), then SIGKILL to the group after `STOP_TIMEOUT_S`. The
server also gets SIGKILL from the kernel if the harness dies first (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from llem_harness.config import ExperimentConfig
from llem_harness.termination import die_with_parent

SERVED_NAME = "llem"
LOG_FILE = "server.log"
START_TIMEOUT_S = 1800.0  # engine start with compilation of a large model
STOP_TIMEOUT_S = 4.0  # inside the runners' stop grace (local 5 s, docker 10 s)
LEN_SLACK = 8  # room above input + output tokens (BOS and rounding), as the offline engines


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def max_len(cfg: ExperimentConfig) -> int:
    return cfg.max_input_tokens + cfg.max_output_tokens + LEN_SLACK


class ServerDetails(BaseModel):
    command: list[str]
    port: int
    start_s: float | None  # from start to the first healthy answer


class ServerProcess:
    """One server: `start()` until healthy, `stop()` on every path out (idempotent)."""

    def __init__(self, cmd: list[str], port: int, log_path: Path) -> None:
        self.cmd, self.port, self.log_path = cmd, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.start_s: float | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start and wait until healthy; returns the seconds it took."""
        t0 = time.monotonic()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() ends its workers too
            preexec_fn=die_with_parent,
        )
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"the server exited with code {code} before it was ready; "
                    f"the end of {self.log_path.name}:\n{self.log_tail()}"
                )
            if self._healthy():
                self.start_s = time.monotonic() - t0
                return self.start_s
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise RuntimeError(
                    f"the server did not answer /health within {timeout_s:.0f} s; the end of "
                    f"{self.log_path.name}:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> int | None:
        """SIGINT to the server's group, then SIGKILL; returns its exit code."""
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            code = _end_group(proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def details(self) -> ServerDetails:
        return ServerDetails(command=self.cmd, port=self.port, start_s=self.start_s)


def _end_group(proc: subprocess.Popen[bytes]) -> int | None:
    for sig, wait in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):  # workers the server left behind
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.poll()
