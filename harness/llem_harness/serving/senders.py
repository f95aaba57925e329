"""How many sender processes the load generator gets for a schedule (`loadgen.py --senders`,
fanout.py; docs/serving.md "The load generator's limits").

One sender keeps its schedule (send lag p99 under 5 ms) up to about 4,000 requests/s on a
2-core machine, at 0.94 of a core, and two to about 6,000 (`bench/loadgen_limits.py`,
bench/README.md). A sender is given `PER_SENDER_RPS`, well below that, so
`ceil(mean rate / PER_SENDER_RPS)` senders, at most one per core the run may use (one core
left for the server where there are more than 2). With `max_concurrency` C there are at most
C senders: each needs a slot of the cap, and the cap, not the senders, then paces the sends.
A rate that needs more senders than that is refused before the server starts.
`request_rate: inf` sends everything at once: one sender.
"""

from __future__ import annotations

import math
import os

PER_SENDER_RPS = 2_500.0  # requests/s one sender is given (on time to about 4,000 measured)


class SendRateError(ValueError):
    """The schedule's rate is more than the load generator can send on time here (a config
    error: the run is refused before its server starts)."""


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or a job's cpuset; a
    CPU quota alone, as docker's `--cpus` sets, is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def sender_cap(cores: int) -> int:
    """The most senders `cores` allow: one a core, one left for the server above 2 cores."""
    return max(1, cores - 1 if cores > 2 else cores)


def senders_for(
    rate: float | None, max_concurrency: int | None, cores: int, knob: str, lower: str
) -> int:
    """The sender count for a schedule of mean `rate` requests/s (None: all at once), or a
    SendRateError when it needs more than `cores` allow, naming `knob` (what set the rate)
    and `lower` (the setting to lower)."""
    if rate is None:
        return 1
    needed = max(1, math.ceil(rate / PER_SENDER_RPS))
    if max_concurrency is not None:
        needed = min(needed, max_concurrency)
    cap = sender_cap(cores)
    if needed > cap:
        raise SendRateError(
            f"{knob} asks for {rate:,.0f} requests/s on average, more than the load generator "
            f"sends on time here: {cap * PER_SENDER_RPS:,.0f} requests/s ({cap} sender "
            f"process(es) of {PER_SENDER_RPS:,.0f} requests/s each, on the {cores} core(s) "
            f"this run may use, one left for the server above 2). Lower {lower}, or run where "
            'the run gets more cores (docs/serving.md, "The load generator\'s limits")'
        )
    return needed
