"""CPU package and DRAM energy from RAPL, through Linux's powercap sysfs.

    /sys/class/powercap/intel-rapl:<pkg>/        name (package-<pkg>), energy_uj,
                                                 max_energy_range_uj
    /sys/class/powercap/intel-rapl:<pkg>:<sub>/  name (core, uncore, dram, ...), the same

(AMD's RAPL appears under the same names.) A package domain (named `package-N`) covers its
cores and uncore; DRAM is a domain of its own where the platform exposes it. Other top-level
domains (`psys`, the whole platform on some workstations, which already holds the packages)
are not added in. The counters are microjoules that wrap at `max_energy_range_uj` (262 kJ on
many Intel servers, 65 kJ on AMD: a few minutes at server power), so a thread reads them every
`poll_s` (1 s) during the window and adds each step, counting a wrap where a step went down.

Three reasons a figure is null, told apart because the fix differs:
- no RAPL: the host has no powercap RAPL domains (most VMs and clouds);
- not readable by this user: since the PLATYPUS attack (CVE-2020-8694) most kernels make
  `energy_uj` readable by root alone, and runs use the caller's uid. An admin allows it with
  `chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (and `intel-rapl:*:*/energy_uj`;
  again after each boot, or a udev rule), accepting that side channel;
- not mounted: the host has RAPL (the runner said so: LLEM_HOST_RAPL=1) but the container
  sees no powercap tree.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from llem_harness.energy.base import CpuReading

POWERCAP = Path("/sys/class/powercap")
HOST_RAPL_ENV = "LLEM_HOST_RAPL"  # set by the container runners: 1 where the host has RAPL
_DOMAIN = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class Domain:
    path: Path
    package: int
    kind: str  # "package" or the subdomain's name (dram, core, uncore, ...)
    max_range_uj: int


def host_has_rapl(root: Path = POWERCAP) -> bool:
    """For the runners: whether this machine exposes any RAPL domain."""
    try:
        return any(_DOMAIN.match(p.name) for p in root.iterdir())
    except OSError:
        return False


class RaplReader:
    """begin() and end() around a window, as the GPU meter does."""

    def __init__(
        self,
        root: Path = POWERCAP,
        *,
        read: Callable[[Path], str] = lambda p: p.read_text(encoding="ascii"),
        env: dict[str, str] | None = None,
        poll_s: float | None = 1.0,  # None: no thread; poll() is called by hand (tests)
    ) -> None:
        self.root, self._read, self.poll_s = root, read, poll_s
        self.env = dict(os.environ if env is None else env)
        self.domains: list[Domain] = []
        self.reason: str | None = None
        self._last: dict[Path, int] = {}
        self._acc: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe()

    def _probe(self) -> None:
        try:
            names = sorted(p.name for p in self.root.iterdir() if _DOMAIN.match(p.name))
        except OSError:
            names = []
        if not names:
            self.reason = (
                "not mounted: the host has RAPL but this container sees no "
                f"{self.root} (the runner did not mount it)"
                if self.env.get(HOST_RAPL_ENV) == "1"
                else "no RAPL: this machine exposes no powercap RAPL domain (common on VMs "
                "and clouds)"
            )
            return
        for name in names:
            m = _DOMAIN.match(name)
            assert m is not None
            path = self.root / name
            try:
                kind = self._read(path / "name").strip()
                top = int(self._read(path / "max_energy_range_uj"))
                self._read(path / "energy_uj")
            except PermissionError:
                self.reason = (
                    f"not readable by this user: {path / 'energy_uj'} is readable by root "
                    "alone (the kernel's PLATYPUS mitigation); an admin can allow it with "
                    "`chmod o+r` on the energy_uj files (docs/backends.md)"
                )
                self.domains = []
                return
            except (OSError, ValueError) as exc:
                self.reason = f"cannot read {path}: {exc}"
                self.domains = []
                return
            if m.group(2) is None and not kind.startswith("package"):
                continue  # psys and the like: they overlap the packages
            is_package = m.group(2) is None
            self.domains.append(
                Domain(path, int(m.group(1)), "package" if is_package else kind, top)
            )

    def _counters(self) -> dict[Path, int]:
        return {d.path: int(self._read(d.path / "energy_uj")) for d in self.domains}

    def begin(self) -> None:
        if not self.domains:
            return
        self._last = self._counters()
        self._acc = dict.fromkeys(self._last, 0)
        if self.poll_s is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="llem-rapl", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self.poll_s is not None
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except (OSError, ValueError):  # a failed read is made up by the next one
                continue

    def poll(self) -> None:
        """Add each counter's step since the last read (a step down is a wrap)."""
        now = self._counters()
        with self._lock:
            for d in self.domains:
                step = now[d.path] - self._last[d.path]
                self._acc[d.path] += step + (d.max_range_uj if step < 0 else 0)
                self._last[d.path] = now[d.path]

    def end(self) -> CpuReading:
        if not self.domains:
            return CpuReading(unavailable_reason=self.reason, dram_unavailable_reason=self.reason)
        if not self._last:
            raise RuntimeError("RaplReader.end() without begin()")
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.poll()
        per_package: dict[str, float] = {}
        dram: float | None = None
        for d in self.domains:
            joules = self._acc[d.path] / 1e6
            if d.kind == "package":
                per_package[str(d.package)] = per_package.get(str(d.package), 0.0) + joules
            elif d.kind == "dram":
                dram = (dram or 0.0) + joules
        return CpuReading(
            cpu_j=sum(per_package.values()) if per_package else None,
            dram_j=dram,
            per_package_j=per_package,
            unavailable_reason=None if per_package else "no RAPL package domain",
            dram_unavailable_reason=None
            if dram is not None
            else "no RAPL dram domain on this machine",
        )


class CpuFields(TypedDict):
    """result.json's CPU and DRAM energy fields (contract.Energy's)."""

    cpu_j: float | None
    cpu_per_package_j: dict[str, float] | None
    cpu_unavailable_reason: str | None
    cpu_method: str | None
    dram_j: float | None
    dram_unavailable_reason: str | None


def cpu_fields(own: CpuReading, meter: CpuReading | None) -> CpuFields:
    """result.json's CPU and DRAM energy fields: the meter's own figures where it measured
    them (Zeus's CPU monitor), else this reader's, with their reasons."""
    if meter is not None:
        return {
            "cpu_j": meter.cpu_j,
            "cpu_per_package_j": meter.per_package_j,
            "cpu_unavailable_reason": None,
            "cpu_method": "zeus",
            "dram_j": meter.dram_j,
            "dram_unavailable_reason": None
            if meter.dram_j is not None
            else "Zeus measured no DRAM",
        }
    return {
        "cpu_j": own.cpu_j,
        "cpu_per_package_j": own.per_package_j or None,
        "cpu_unavailable_reason": own.unavailable_reason,
        "cpu_method": "rapl" if own.cpu_j is not None else None,
        "dram_j": own.dram_j,
        "dram_unavailable_reason": own.dram_unavailable_reason,
    }
