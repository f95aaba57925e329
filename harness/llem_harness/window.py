"""The measured window: one synchronised pass inside one window of every reader (the GPU meter,
RAPL, CodeCarbon: energy/measurement.py). Under a policy that grows the window (the
publication profile), the pass holds the prompts as many times as the window's minimum
length needs, judged from the last warmup pass (`grown_prompts`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llem_harness.backends.base import Backend, PassResult
from llem_harness.contract import Warmup
from llem_harness.contract_validity import ValidityPolicy
from llem_harness.energy.base import CpuReading, WindowReading
from llem_harness.energy.measurement import Measurement, Meters
from llem_harness.phases import quiet_gc


@dataclass
class Window:
    """The measured pass and its measurement."""

    measured: PassResult
    measurement: Measurement

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


def measure_window(backend: Backend, meters: Meters, prompts: list[list[int]]) -> Window:
    """The measured pass over `prompts`, every reader opened and closed around it."""
    with quiet_gc():
        backend.synchronize()
        with meters.window() as w:
            measured = backend.generate(prompts, timed=True)
            backend.synchronize()
    return Window(measured, w.result())


def grown_prompts(
    prompts: list[list[int]], warmup: Warmup, policy: ValidityPolicy | None
) -> tuple[list[list[int]], int, str | None]:
    """The prompts of the measured pass, repeated when the policy grows the window: the last
    warmup pass (the same prompts, the same engine) took `pass_seconds[-1]`, so `k` passes'
    worth reach `policy.min_window_s`. Returns (prompts, k, the result's note or None). None
    (a serving run, whose window the arrivals set) leaves the prompts as they are."""
    last = warmup.pass_seconds[-1] if warmup.pass_seconds else 0.0
    if policy is None or not policy.grow_window or last <= 0:
        return prompts, 1, None
    k = math.ceil(policy.min_window_s / last)
    if k <= 1:
        return prompts, 1, None
    note = (
        f"the measured pass holds the {len(prompts)} prompts {k} times ({len(prompts) * k} "
        f"requests): the last warmup pass took {last:.1f} s and the {policy.profile} "
        f"profile asks for a window of at least {policy.min_window_s:g} s"
    )
    return prompts * k, k, note
