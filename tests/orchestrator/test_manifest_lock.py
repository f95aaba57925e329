"""manifest.locked() where flock() fails (some NFS and Lustre mounts): an exclusive lock file
with mutual exclusion between processes, stale-lock takeover, and a timeout that names the
file and the fix."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from llem_docker.store import manifest as manifest_mod
from llem_docker.store.layout import HELD_FILE
from llem_docker.store.lockfile import LockTimeout, read_holder
from llem_docker.store.manifest import locked


@pytest.fixture
def no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: Any, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(manifest_mod, "_warned", set())


def _worker(study_dir: str, log: str, rounds: int) -> None:
    for _ in range(rounds):
        with locked(Path(study_dir), timeout_s=30):
            with open(log, "a") as fh:
                fh.write(f"in {os.getpid()}\n")
            time.sleep(0.01)
            with open(log, "a") as fh:
                fh.write(f"out {os.getpid()}\n")


def test_three_processes_exclude_each_other(
    tmp_path: Path, no_flock: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log.txt"
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "token": "t0", "since": "x"}
    (tmp_path / HELD_FILE).write_text(json.dumps(stale))  # all three race to take it over
    fork = multiprocessing.get_context("fork")  # the children keep the refusing flock
    with caplog.at_level(logging.WARNING, logger="llem_docker.store.manifest"):
        procs = [fork.Process(target=_worker, args=(str(tmp_path), str(log), 15)) for _ in "ab"]
        for p in procs:
            p.start()
        _worker(str(tmp_path), str(log), 15)  # and this process as a third
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        with locked(tmp_path, timeout_s=5):  # a second use warns no more
            pass
    lines = log.read_text().splitlines()
    assert len(lines) == 3 * 15 * 2
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):  # never two inside
        assert enter.startswith("in ") and leave == "out " + enter[3:]
    assert len({line.split()[1] for line in lines}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".manifest.lock", "log.txt"]
    (record,) = [r for r in caplog.records if "flock" in r.getMessage()]
    assert "lock file" in record.getMessage() and HELD_FILE in record.getMessage()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, no_flock: None) -> None:
    held = tmp_path / HELD_FILE
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "token": "t0", "since": "x"}
    held.write_text(json.dumps(stale))
    t0 = time.monotonic()
    with locked(tmp_path, timeout_s=5):
        holder = read_holder(held)
        assert holder is not None and holder.pid == os.getpid() and holder.token != "t0"
    assert time.monotonic() - t0 < 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".manifest.lock"]


def test_a_live_lock_times_out_with_the_file_and_the_fix(tmp_path: Path, no_flock: None) -> None:
    held = tmp_path / HELD_FILE
    live = {"pid": os.getppid(), "host": socket.gethostname(), "token": "t1", "since": "then"}
    held.write_text(json.dumps(live))
    with pytest.raises(LockTimeout) as info, locked(tmp_path, timeout_s=0.3):
        pass
    text = str(info.value)
    assert str(held) in text and f"pid {os.getppid()}" in text and "Fix:" in text
    assert "flock" in text and f"delete {held}" in text
    assert json.loads(held.read_text()) == live  # left alone


def test_another_hosts_lock_is_never_taken_over(tmp_path: Path, no_flock: None) -> None:
    held = tmp_path / HELD_FILE
    other = {"pid": _dead_pid(), "host": "some-other-node", "token": "t2", "since": "then"}
    held.write_text(json.dumps(other))
    with (
        pytest.raises(LockTimeout, match=r"on host some-other-node.*another host"),
        locked(tmp_path, timeout_s=0.3),
    ):
        pass
    assert json.loads(held.read_text()) == other


def test_other_flock_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: Any, op: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError, match="I/O error"), locked(tmp_path):
        pass


def test_flock_still_used_where_it_works(tmp_path: Path) -> None:
    with locked(tmp_path):
        assert not (tmp_path / HELD_FILE).exists()
        fd = os.open(tmp_path / ".manifest.lock", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
