"""What every runner does with the harness's output: keep all of it in container.log, and
hand the JSON progress events (`{"event": ...}` lines) to the host display in its own thread.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from llem_docker.execution.runners.base import EventHandler

MAX_BATCH = 1000
POLL_S = 0.1
Events = queue.Queue[dict[str, Any]]
# What a reader puts last, where the end of its stream is the end of the run (a container's
# log stream): `follow` returns at once instead of at its next poll.
END: dict[str, Any] = {"event": "_end_of_stream"}


def parse_event(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


def lines_of(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """Re-split a byte stream (Docker log frames) into lines; a last partial line included."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *done, rest = rest.split(b"\n")
        for line in done:
            yield line + b"\n"
    if rest:
        yield rest


def pump(lines: Iterable[bytes], log: IO[str], events: Events) -> None:
    """Reader-thread body: every line to `log` (flushed), each JSON event to `events`."""
    for raw in lines:
        text = raw.decode("utf-8", errors="replace")
        log.write(text if text.endswith("\n") else text + "\n")
        log.flush()
        event = parse_event(text)
        if event is not None:
            events.put(event)


def dispatch(events: Events, on_event: EventHandler, *, wait_s: float) -> bool:
    """Wait up to `wait_s` for an event, then hand over what is queued, in the caller's
    thread. True once the stream's END came."""
    timeout = wait_s
    for _ in range(MAX_BATCH):
        try:
            item = events.get(timeout=timeout) if timeout > 0 else events.get_nowait()
        except queue.Empty:
            return False
        if item is END:
            return True
        on_event(item)
        timeout = 0.0
    return False


def drain(events: Events, on_event: EventHandler) -> None:
    while not events.empty():
        if dispatch(events, on_event, wait_s=0.0):
            return


def follow(
    events: Events,
    on_event: EventHandler,
    *,
    running: Callable[[], bool],
    stop: Callable[[], None],
    timeout_s: float,
) -> tuple[bool, bool]:
    """Hand events over while `running()`. On timeout or Ctrl+C, `stop()` the run.

    Returns (timed_out, interrupted).
    """
    deadline = time.monotonic() + timeout_s
    try:
        while running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop()
                return True, False
            if dispatch(events, on_event, wait_s=min(POLL_S, remaining)):
                break
    except KeyboardInterrupt:
        stop()
        return False, True
    return False, False
