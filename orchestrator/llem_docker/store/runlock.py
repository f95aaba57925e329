"""One process runs a study's loop at a time: `run --resume` of a folder that another
llem-docker is running is refused at once, before anything in the folder is touched.

The lock is flock() on `.running.lock` in the study folder, held for the whole loop; the
kernel releases it when its process ends in any way (SIGKILL included), so a crash leaves no
lock behind. The file holds the holder's pid, host and start time, for the message. Where the
filesystem refuses flock() (some NFS and Lustre mounts), the lock is an O_EXCL lock file
instead (store/lockfile.py), taken over when its owner is a dead process on this host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from llem_docker.errors import ConfigError
from llem_docker.store.layout import StudyDir
from llem_docker.store.lockfile import LockTimeout, exclusive
from llem_docker.store.manifest import NO_FLOCK, utc_now


def _busy(study_dir: Path, holder: str) -> ConfigError:
    return ConfigError(
        f"another llem-docker is running this study now ({holder}); two processes must "
        "never run the same folder's runs",
        source=study_dir,
        fix="wait for it to finish, or stop it (Ctrl+C in its terminal, or `kill` that pid), "
        "then resume again",
    )


def _describe(text: str) -> str:
    try:
        data = json.loads(text)
        return f"pid {data['pid']} on {data['host']}, since {data['since']}"
    except (ValueError, KeyError, TypeError):
        return "its details are not readable"


@contextlib.contextmanager
def running(study_dir: Path) -> Iterator[None]:
    """Hold the study's run lock, or raise a ConfigError naming who holds it."""
    path = StudyDir(study_dir).run_lock
    for _ in range(5):  # a holder that just ended unlinked the file we opened: open again
        with path.open("a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    fh.seek(0)
                    raise _busy(study_dir, _describe(fh.read())) from None
                if exc.errno not in NO_FLOCK:
                    raise
                break  # no flock here: the lock file below
            if not _same_file(fh.fileno(), path):
                continue
            try:
                _write_holder(fh)
                yield
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()  # before the unlock, so nobody locks a stale file
                fcntl.flock(fh, fcntl.LOCK_UN)
            return
    else:
        raise _busy(study_dir, "its lock file was replaced five times in a row")
    try:
        with exclusive(path.with_name(f"{path.name}.held"), timeout_s=0.0):
            yield
    except LockTimeout as exc:
        raise _busy(study_dir, str(exc).splitlines()[0]) from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _write_holder(fh: TextIO) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(me))
    fh.flush()
