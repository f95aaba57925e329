"""The measured window: synchronised passes over the prompts inside one window of every reader
(the GPU meter, RAPL, CodeCarbon: energy/measurement.py).

One pass, unless the validity policy grows the window (the publication profile: `min_s`):
then whole passes follow one another, each exactly as the standard profile's one pass (the
same batches, the same ramp and drain), until the window has lasted `min_s`. So J/token is
the same workload's under every profile, and the window reaches its minimum whatever the
engine's batching (the last pass may carry it past). The result says how many passes
(`window_repeats`, and a warning naming them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from llem_harness.backends.base import Backend, PassResult
from llem_harness.energy.base import CpuReading, WindowReading
from llem_harness.energy.measurement import Measurement, Meters
from llem_harness.phases import quiet_gc
from llem_harness.termination import check_terminated


@dataclass
class Window:
    """The measured passes, as one, and their measurement."""

    measured: PassResult
    measurement: Measurement
    passes: int = 1

    @property
    def duration(self) -> float:
        return self.measurement.seconds

    @property
    def opened(self) -> float:
        return self.measurement.opened

    @property
    def reading(self) -> WindowReading:
        return self.measurement.gpu

    @property
    def cpu(self) -> CpuReading:
        return self.measurement.cpu


def measure_window(
    backend: Backend, meters: Meters, prompts: list[list[int]], min_s: float = 0.0
) -> Window:
    """Passes over `prompts` until the window has lasted `min_s` (one pass when it is 0),
    every reader opened and closed around them."""
    with quiet_gc():
        backend.synchronize()
        with meters.window() as w:
            t0 = time.perf_counter()
            measured = backend.generate(prompts, timed=True)
            backend.synchronize()
            passes = 1
            while time.perf_counter() - t0 < min_s:
                check_terminated()
                merge(measured, backend.generate(prompts, timed=True))
                backend.synchronize()
                passes += 1
    return Window(measured, w.result(), passes)


def merge(into: PassResult, more: PassResult) -> None:
    """`more`'s tokens and per-request lists appended to `into`'s, in order."""
    into.input_tokens += more.input_tokens
    into.output_tokens += more.output_tokens
    for f in fields(PassResult):
        value = getattr(into, f.name)
        if isinstance(value, list):
            value.extend(getattr(more, f.name))


def passes_note(passes: int, prompts: int, min_s: float, profile: str) -> str | None:
    """The result's warning for a window of several passes, or None."""
    if passes <= 1:
        return None
    return (
        f"the measured window holds {passes} passes over the {prompts} prompts "
        f"({passes * prompts} requests), one after another, to last the {profile} profile's "
        f"{min_s:g} s"
    )
