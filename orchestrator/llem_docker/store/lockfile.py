"""An exclusive lock file, for the filesystems where flock() does not work.

Some NFS and Lustre mounts (where HPC users keep their results) answer flock() with ENOLCK
or EOPNOTSUPP. There `manifest.locked()` falls back to this lock: a file created with
O_CREAT|O_EXCL (atomic on local filesystems, NFSv3+ and Lustre) that holds its owner's pid,
host and a random token. A lock whose owner is a dead process on this host is stale and is
taken over. One held from another host cannot be checked from here, so waiting for it ends,
after `timeout_s`, in an error that names the file, its owner and the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llem_docker.errors import LlemError

POLL_S = 0.05


class LockTimeout(LlemError):
    """The lock file stayed held for longer than the caller would wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock file, as far as its content says (all None while it is written)."""

    pid: int | None = None
    host: str | None = None
    token: str | None = None
    since: str | None = None


def read_holder(path: Path) -> Holder | None:
    """The lock file's holder; None when there is no lock file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return Holder()
    try:
        data = json.loads(text)
        return Holder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            token=str(data["token"]),
            since=str(data.get("since")),
        )
    except (ValueError, KeyError, TypeError):
        return Holder()  # being written right now, or garbled: held, owner unknown


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that pid runs (someone else's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(holder: Holder, host: str | None = None) -> bool:
    """Held by a process of this host that no longer runs (another host's: cannot tell)."""
    here = host or socket.gethostname()
    return holder.pid is not None and holder.host == here and not pid_alive(holder.pid)


@contextlib.contextmanager
def exclusive(path: Path, *, timeout_s: float, why: str = "") -> Iterator[None]:
    """Hold `path` as a lock file for the duration; LockTimeout after `timeout_s`.

    `why` is added to the timeout error (e.g. why this lock is used instead of flock)."""
    token = acquire(path, timeout_s=timeout_s, why=why)
    try:
        yield
    finally:
        release(path, token)


def acquire(path: Path, *, timeout_s: float, why: str = "") -> str:
    """Create the lock file (waiting while someone else holds it); its token."""
    token = uuid.uuid4().hex
    content = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": token,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_holder(path)
            if holder is None:  # released in between
                continue
            if is_stale(holder):
                _take_over(path, holder)
                continue
            if time.monotonic() >= deadline:
                raise LockTimeout(_timeout_message(path, holder, timeout_s, why)) from None
            time.sleep(POLL_S)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        return token


def release(path: Path, token: str) -> None:
    """Remove the lock file if it is still ours."""
    holder = read_holder(path)
    if holder is not None and holder.token == token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _take_over(path: Path, stale: Holder) -> None:
    """Move a stale lock aside, atomically, so that only one waiter removes it. If what was
    moved is not the stale lock read a moment ago (someone took over first and holds it
    now), put it back."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = read_holder(aside)
    if moved is not None and moved.token != stale.token:
        with contextlib.suppress(OSError):
            os.link(aside, path)  # fails if a third waiter already created a new one
    with contextlib.suppress(FileNotFoundError):
        aside.unlink()


def _timeout_message(path: Path, holder: Holder, timeout_s: float, why: str) -> str:
    if holder.pid is None:
        owner = "by an owner it does not name (it is empty or garbled)"
        gone = "if no llem-docker command is using this results folder"
    else:
        owner = f"by pid {holder.pid} on host {holder.host} since {holder.since}"
        gone = (
            "if that process has ended (on another host llem-docker cannot check)"
            if holder.host != socket.gethostname()
            else "if that process is not llem-docker (its pid was reused)"
        )
    return (
        f"could not lock {path} within {timeout_s:g} s: it is held {owner}"
        + (f" ({why})" if why else "")
        + f". Fix: wait for that llem-docker command to finish; {gone}, delete {path}"
    )
