"""A second, private Docker engine for tests that stop the engine mid-study.

The shared engine is never touched. This one runs in its own network namespace (`unshare
--net`): with `--bridge=none` dockerd deletes the interface `docker0` at start, which in the
host's namespace would be the shared engine's bridge. It has its own data root, exec root
(and with it its own containerd), pid file, socket, cgroup parent and an empty config file.
The containers need no network: the test image is loaded into it from the shared engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

UP_TIMEOUT_S = 60.0
DOWN_TIMEOUT_S = 60.0


def unavailable() -> str | None:
    """Why a second engine cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting a second dockerd needs root"
    for tool in ("dockerd", "unshare", "docker"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None


class SecondEngine:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="llem-second-", dir="/tmp"))
        self.socket = self.base / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.cgroup = f"/{self.base.name}"
        (self.base / "daemon.json").write_text("{}\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        return [
            "unshare",
            "--net",
            "--",
            "dockerd",
            "--config-file",
            str(self.base / "daemon.json"),
            "--host",
            self.host,
            "--data-root",
            str(self.base / "data"),
            "--exec-root",
            str(self.base / "exec"),
            "--pidfile",
            str(self.base / "docker.pid"),
            "--cgroup-parent",
            self.cgroup,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
        ]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start it (again, on the same data root) and wait until it answers."""
        assert not self.running
        self._log = (self.base / "dockerd.log").open("ab")
        # unshare execs dockerd: the child's pid is dockerd's, to be signalled directly.
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the second dockerd exited at start:\n{self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.3)
        raise RuntimeError(f"the second dockerd did not answer in time:\n{self.log_tail()}")

    def answers(self) -> bool:
        import docker
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            client = docker.DockerClient(base_url=self.host, timeout=5)
        except DockerException:
            return False
        try:
            return bool(client.ping())
        except (DockerException, RequestException):
            return False
        finally:
            client.close()

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    def terminate(self) -> None:
        """SIGTERM, as `systemctl stop docker` does; returns at once."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = DOWN_TIMEOUT_S) -> None:
        assert self.proc is not None
        self.proc.wait(timeout_s)
        if self._log is not None:
            self._log.close()

    def load(self, image: str) -> None:
        """`docker save IMAGE | DOCKER_HOST=<this one> docker load` (from the shared engine)."""
        env = {**os.environ, "DOCKER_HOST": self.host}
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        try:
            loaded = subprocess.run(
                ["docker", "load", "-q"],
                stdin=save.stdout,
                env=env,
                capture_output=True,
                timeout=900,
                check=False,
            )
        finally:
            if save.stdout is not None:
                save.stdout.close()
            save.wait(60)
        if save.returncode != 0 or loaded.returncode != 0:
            raise RuntimeError(f"could not load {image}: {loaded.stderr.decode()[-2000:]}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.base / "dockerd.log").read_text().splitlines()[-lines:])
        return ""

    def destroy(self) -> None:
        """Stop it (SIGKILL if SIGTERM is not enough), then remove everything it left."""
        if self.running:
            self.terminate()
            try:
                self.wait_stopped()
            except subprocess.TimeoutExpired:
                assert self.proc is not None
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None and not self._log.closed:
            self._log.close()
        # Its own containerd stops with it; after a SIGKILL it might not. (Only that
        # process: its pid file may name a pid that has since been reused.)
        pidfile = self.base / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if str(self.base) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGTERM)
        for mount in reversed(_mounts_under(self.base)):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
        for controller in Path("/sys/fs/cgroup").glob(f"*{self.cgroup}"):
            with contextlib.suppress(OSError):
                controller.rmdir()


def _mounts_under(base: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(base) + "/"
    return [p for p in (line.split()[1] for line in lines) if p.startswith(prefix)]
