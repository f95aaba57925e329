"""The runners' output handling (execution/runners/stream.py): events reach the display in
order, and the end of a container's log stream ends the wait at once, not at the next poll."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from llem_docker.execution.runners.stream import END, POLL_S, Events, drain, follow


def test_the_end_of_the_stream_ends_the_wait_before_the_next_poll() -> None:
    events: Events = queue.Queue()
    seen: list[dict[str, Any]] = []
    stopped: list[bool] = []

    def writer() -> None:
        events.put({"event": "phase", "phase": "load"})
        time.sleep(0.3)
        events.put({"event": "phase", "phase": "write"})
        events.put(END)

    thread = threading.Thread(target=writer)
    thread.start()
    t0 = time.monotonic()
    ended = follow(
        events, seen.append, running=lambda: True, stop=lambda: stopped.append(True), timeout_s=30
    )  # `running` never turns False: only END can end it
    took = time.monotonic() - t0
    thread.join()
    assert ended == (False, False) and not stopped
    assert [e["phase"] for e in seen] == ["load", "write"]  # END itself is not an event
    assert took < 0.3 + 10 * POLL_S  # it returned (a hang would reach the 30 s timeout)


def test_drain_hands_over_what_is_left_and_stops_at_the_end() -> None:
    events: Events = queue.Queue()
    for k in range(3):
        events.put({"event": "warmup", "run": k})
    events.put(END)
    seen: list[dict[str, Any]] = []
    drain(events, seen.append)
    assert [e["run"] for e in seen] == [0, 1, 2] and events.empty()
