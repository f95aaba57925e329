"""The warmup phase: full-length passes until throughput settles.

Passes run (at least `warmup_runs`, at most `warmup_max_runs`) until the coefficient of
variation of the last `CV_WINDOW` passes' throughput is at or under the threshold. A warmup
that ends unsettled is a warning on the result (`unsettled_warning`).
"""

from __future__ import annotations

import time

from llem_harness.backends.base import Backend
from llem_harness.contract import Warmup, emit
from llem_harness.phases import quiet_gc
from llem_harness.summary import cv
from llem_harness.termination import check_terminated

CV_WINDOW = 3  # warmup settles when the CV of the last 3 passes is under the threshold


def warm_up(
    backend: Backend, prompts: list[list[int]], min_runs: int, max_runs: int, threshold: float
) -> Warmup:
    groups = backend.warmup_batches(prompts)
    rates: list[float] = []
    seconds: list[float] = []
    while len(rates) < max_runs:
        if len(rates) >= min_runs and settled(rates, threshold):
            break
        with quiet_gc():
            t0 = time.perf_counter()
            out = 0
            for group in groups:
                out += backend.generate(group, timed=False).output_tokens
                check_terminated()
            backend.synchronize()
            seconds.append(time.perf_counter() - t0)
            rates.append(out / seconds[-1])
        emit("warmup", run=len(rates), tokens_per_s=round(rates[-1], 2))
    return Warmup(
        runs=len(rates),
        converged=settled(rates, threshold),
        final_cv=cv(rates[-CV_WINDOW:]) if len(rates) >= 2 else None,
        threshold=threshold,
        throughputs=[round(r, 3) for r in rates],
        pass_seconds=[round(t, 4) for t in seconds],
    )


def settled(rates: list[float], threshold: float) -> bool:
    spread = cv(rates[-CV_WINDOW:]) if len(rates) >= CV_WINDOW else None
    return spread is not None and spread <= threshold


def unsettled_warning(warmup: Warmup, max_runs: int) -> str | None:
    """The result's warning for a warmup that ended unsettled, or None."""
    if max_runs == 0 or warmup.converged:
        return None
    why = (
        f"CV {warmup.final_cv:.4f} > {warmup.threshold}"
        if warmup.runs >= CV_WINDOW and warmup.final_cv is not None
        else f"settling is judged on {CV_WINDOW} passes"
    )
    return f"warmup did not settle: {why} after {warmup.runs} passes (raise warmup_max_runs)"
