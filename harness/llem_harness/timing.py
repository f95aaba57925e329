"""Where a run's wall time goes: the `timing` block of result.json.

Each run is a fresh process, so the fixed costs (interpreter start and harness imports,
the idle baseline, engine imports, model load and compilation, warmup) repeat every run. The
block makes them visible per run, so that their waste can be seen and cut without guessing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from llem_harness.contract import Timing

HARNESS_MAINS = ("llem_harness", "llem_harness.cli", "llem_harness.__main__")


def process_age_s() -> tuple[float | None, str | None]:
    """Seconds since this process started, from /proc/self/stat's `starttime` (clock ticks
    since boot) against CLOCK_BOOTTIME (the same clock); resolution 1/CLK_TCK (10 ms)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # comm (field 2) may hold spaces; the fields after the closing parenthesis are fixed
        fields = stat[stat.rindex(")") + 2 :].split()
        start_ticks = int(fields[19])  # field 22 overall
        ticks = os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / ticks, None
    except (OSError, ValueError, IndexError, AttributeError) as exc:
        return None, f"no process start time (/proc/self/stat unreadable: {exc})"


def harness_is_main() -> bool:
    """Whether this process was started to run the harness (`llem-harness run`,
    `python -m llem_harness[.cli]`), rather than calling it as a library."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in HARNESS_MAINS:
        return True
    return Path(sys.argv[0]).name == "llem-harness" if sys.argv else False


class PhaseClock:
    """Seconds per phase, on time.perf_counter(); `startup_s` is taken at construction."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.seconds: dict[str, float] = {}
        if harness_is_main():
            self.startup_s, self.startup_reason = process_age_s()
        else:
            self.startup_s, self.startup_reason = (
                None,
                "the harness was called inside a longer-lived process (the library API, "
                "a benchmark or a test): that process's start is not this run's",
            )

    def lap(self, phase: str) -> None:
        """Close `phase` now: the time since the previous lap (or the start) is its own."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + (now - self.last)
        self.last = now

    def assign(self, **seconds: float) -> None:
        """Add phases measured apart (ones that ran at once, and `overlapped`: how long they
        did) and start the next phase now."""
        for phase, value in seconds.items():
            self.seconds[phase] = self.seconds.get(phase, 0.0) + value
        self.last = time.perf_counter()

    def timing(self) -> Timing:
        s = self.seconds
        return Timing(
            startup_s=self.startup_s,
            startup_unavailable_reason=self.startup_reason,
            config_s=s.get("config"),
            baseline_s=s.get("baseline"),
            imports_s=s.get("imports"),
            load_s=s.get("load"),
            warmup_s=s.get("warmup"),
            measure_s=s.get("measure"),
            write_s=s.get("write"),
            overlapped_s=s.get("overlapped"),
            harness_s=time.perf_counter() - self.t0,
        )
