"""The idle baseline, measured while the engine imports.

Every run is a fresh process that must measure the devices' idle power (the baseline) and
import its engine (torch, transformers, vllm: 4-13 s on an H200 host). Importing is CPU work
that leaves the GPUs idle (no CUDA context exists yet), so the two run at once: the baseline
samples in a thread while the main thread imports, and the run waits only for the longer of
the two. That is where a run's baseline stops costing wall time.

The overlap is only sound while this process holds no CUDA context: creating one wakes the
device out of idle. If the imports initialised CUDA before the baseline ended (torch's view,
checked as the baseline ends), the baseline is measured again after the imports and the run
says so (a warning in result.json): that baseline then includes this process's open context.
A context some other library created without torch is not seen by torch's check; NVML's
list of compute processes on the measured GPUs, read as the baseline ends, sees any process's
(where the driver lists them: inside a container it may list none). Either makes the
outcome's `cuda_context` true, which the `baseline_context` validity rule fails.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llem_harness.energy.base import EnergyMeter


def cuda_initialised() -> bool:
    """Whether this process has initialised CUDA (torch's view; False without torch)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    is_initialized = getattr(cuda, "is_initialized", None)
    return bool(is_initialized()) if callable(is_initialized) else False


@dataclass
class BaselineOutcome:
    power_w: float | None
    baseline_s: float  # the baseline's own wall time (both measurements if it was repeated)
    imports_s: float
    overlapped_s: float  # seconds during which both ran
    warning: str | None = None
    # whether a CUDA context was open while the baseline was taken (None: not known)
    cuda_context: bool | None = None


class _BaselineThread(threading.Thread):
    def __init__(
        self,
        meter: EnergyMeter,
        seconds: float,
        cuda_check: Callable[[], bool],
        processes: Callable[[], int | None],
    ) -> None:
        super().__init__(name="llem-baseline", daemon=True)
        self.meter, self.seconds, self.cuda_check = meter, seconds, cuda_check
        self.processes = processes
        self.power_w: float | None = None
        self.error: BaseException | None = None
        self.cuda_at_end = False  # whether a CUDA context existed when the baseline ended
        self.processes_at_end: int | None = None  # NVML's count of compute processes then
        self.t0 = self.t1 = 0.0

    def run(self) -> None:
        self.t0 = time.perf_counter()
        try:
            self.power_w = self.meter.measure_baseline(self.seconds)
        except BaseException as exc:  # re-raised in the main thread
            self.error = exc
        finally:
            self.t1 = time.perf_counter()
            self.cuda_at_end = self.cuda_check()
            self.processes_at_end = self.processes()


def baseline_beside_imports(
    meter: EnergyMeter,
    seconds: float,
    imports: Callable[[], None],
    cuda_check: Callable[[], bool] = cuda_initialised,
    processes: Callable[[], int | None] = lambda: None,
) -> BaselineOutcome:
    """Measure `meter`'s idle baseline over `seconds` while `imports()` runs; see the module
    docstring for when the baseline is measured again. `processes` counts the processes that
    hold a CUDA context on the measured GPUs (None: unknown, as without a GPU)."""
    cuda_before = cuda_check()
    thread = _BaselineThread(meter, seconds, cuda_check, processes)
    thread.start()
    t0 = time.perf_counter()
    imports()  # on an exception (a SIGTERM too) the daemon thread is left: no waiting for it
    t1 = time.perf_counter()
    thread.join()  # the baseline ends by itself after `seconds`
    if thread.error is not None:
        raise thread.error
    outcome = BaselineOutcome(
        power_w=thread.power_w,
        baseline_s=thread.t1 - thread.t0,
        imports_s=t1 - t0,
        overlapped_s=max(0.0, min(t1, thread.t1) - max(t0, thread.t0)),
        cuda_context=_context(cuda_before or thread.cuda_at_end, thread.processes_at_end),
    )
    # Measured again only if a context was created while the baseline ran, not after it.
    if seconds > 0 and not cuda_before and thread.cuda_at_end and thread.power_w is not None:
        again_t0 = time.perf_counter()
        outcome.power_w = meter.measure_baseline(seconds)
        outcome.baseline_s += time.perf_counter() - again_t0
        outcome.warning = (
            "the engine's imports initialised CUDA while the idle baseline was measured, so "
            "it was measured again after them: the baseline includes this process's CUDA "
            "context"
        )
    return outcome


def _context(own: bool, processes: int | None) -> bool | None:
    """Open during the baseline: this process's context (torch), or any process's (NVML)."""
    if own or (processes or 0) > 0:
        return True
    return None if processes is None else False
