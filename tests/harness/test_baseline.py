"""The idle baseline runs while the engine imports (llem_harness.baseline)."""

from __future__ import annotations

import threading

import pytest

from llem_harness.baseline import baseline_beside_imports
from llem_harness.timing import PhaseClock

WAIT_S = 10.0  # only a broken overlap ever waits this long


class FakeMeter:
    """measure_baseline blocks until the imports say they ran: it can only return if the two
    run at once."""

    def __init__(self, power_w: float | None = 40.0) -> None:
        self.power_w = power_w
        self.calls = 0
        self.in_baseline = threading.Event()
        self.release = threading.Event()
        self.fail: BaseException | None = None

    def measure_baseline(self, seconds: float) -> float | None:
        self.calls += 1
        if self.calls == 1:
            self.in_baseline.set()
            assert self.release.wait(WAIT_S), "the imports never ran beside the baseline"
        if self.fail is not None:
            raise self.fail
        return self.power_w


def test_the_imports_run_while_the_baseline_is_measured() -> None:
    meter = FakeMeter()
    seen: list[bool] = []

    def imports() -> None:
        seen.append(meter.in_baseline.wait(WAIT_S))  # the baseline is under way...
        meter.release.set()  # ...and cannot end before this

    out = baseline_beside_imports(meter, 5.0, imports, cuda_check=lambda: False)  # type: ignore[arg-type]
    assert seen == [True] and meter.calls == 1
    assert out.power_w == 40.0 and out.warning is None
    assert out.overlapped_s > 0 and out.baseline_s >= out.overlapped_s


def test_imports_that_initialise_cuda_get_a_second_baseline_and_a_warning() -> None:
    meter, cuda = FakeMeter(), [False]

    def imports() -> None:
        meter.in_baseline.wait(WAIT_S)
        cuda[0] = True  # e.g. an engine that creates a context on import
        meter.release.set()

    out = baseline_beside_imports(meter, 5.0, imports, cuda_check=lambda: cuda[0])  # type: ignore[arg-type]
    assert meter.calls == 2 and out.power_w == 40.0
    assert out.warning is not None and "initialised CUDA" in out.warning


def test_no_second_baseline_without_a_meter_or_with_cuda_already_up() -> None:
    for meter, before in ((FakeMeter(power_w=None), False), (FakeMeter(), True)):
        meter.release.set()
        answers = iter([before, True])  # CUDA is up after the imports either way
        out = baseline_beside_imports(meter, 5.0, lambda: None, cuda_check=answers.__next__)  # type: ignore[arg-type]
        assert meter.calls == 1 and out.warning is None


def test_a_failing_baseline_fails_the_run_after_the_imports() -> None:
    meter = FakeMeter()
    meter.fail = RuntimeError("NVML went away")
    with pytest.raises(RuntimeError, match="NVML went away"):
        baseline_beside_imports(meter, 5.0, meter.release.set, cuda_check=lambda: False)  # type: ignore[arg-type]


def test_failing_imports_propagate_at_once_without_waiting_for_the_baseline() -> None:
    """A SIGTERM (or any error) in the imports must reach the harness now, so that it can
    write error.json within the runner's grace: the baseline thread is left to itself."""
    meter = FakeMeter()

    def imports() -> None:
        meter.in_baseline.wait(WAIT_S)
        raise ImportError("no vllm")

    with pytest.raises(ImportError, match="no vllm"):
        baseline_beside_imports(meter, 5.0, imports, cuda_check=lambda: False)  # type: ignore[arg-type]
    (thread,) = [t for t in threading.enumerate() if t.name == "llem-baseline"]
    assert thread.is_alive() and thread.daemon  # not joined: still in its baseline
    meter.release.set()
    thread.join(WAIT_S)


def test_cuda_after_the_baseline_ended_needs_no_second_baseline() -> None:
    meter = FakeMeter()
    meter.release.set()
    cuda = [False]

    def imports() -> None:
        meter.in_baseline.wait(WAIT_S)
        while any(t.name == "llem-baseline" and t.is_alive() for t in threading.enumerate()):
            threading.Event().wait(0.01)  # the baseline has ended...
        cuda[0] = True  # ...before the engine created its context

    out = baseline_beside_imports(meter, 5.0, imports, cuda_check=lambda: cuda[0])  # type: ignore[arg-type]
    assert meter.calls == 1 and out.warning is None


def context_seen(cuda_at_end: bool, processes: int | None) -> bool | None:
    meter = FakeMeter()
    meter.release.set()
    answers = iter([False, cuda_at_end])  # before the baseline, then at its end
    out = baseline_beside_imports(
        meter,  # type: ignore[arg-type]
        5.0,
        lambda: None,
        cuda_check=lambda: next(answers, cuda_at_end),
        processes=lambda: processes,
    )
    return out.cuda_context


def test_the_outcome_says_whether_a_context_was_open_during_the_baseline() -> None:
    """torch's view of this process, or NVML's count of compute processes at its end."""
    assert context_seen(False, 0) is False
    assert context_seen(False, None) is None  # no NVML: not known
    assert context_seen(False, 2) is True  # another process holds the GPU
    assert context_seen(True, None) is True  # this process opened one


def test_the_clock_takes_phases_that_overlapped() -> None:
    clock = PhaseClock()
    clock.seconds["baseline"] = 0.5  # the meter's setup, lapped before
    clock.assign(baseline=5.0, imports=4.0, overlapped=4.0)
    clock.lap("load")
    t = clock.timing()
    assert (t.baseline_s, t.imports_s, t.overlapped_s) == (5.5, 4.0, 4.0)
    assert t.load_s is not None and t.load_s < 1.0
