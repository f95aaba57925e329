"""The CPU's model name, as the runs record it (environment.py) and as the host sees its own
(the reviewer's environment record): /proc/cpuinfo's first `model name`, else `platform`."""

from __future__ import annotations

import platform


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
