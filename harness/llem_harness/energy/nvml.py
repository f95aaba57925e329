"""NVML energy meter: the total-energy counter at the window edges, plus a sampler thread.

The device layer it stands on (the NVML session, visible GPUs, guarded queries) is
energy/nvml_device.py. Every NVML-using object accepts an `nvml` module argument so that
tests can drive it with a fake.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from llem_harness.contract_env import Gpu
from llem_harness.energy.base import Sample, WindowReading
from llem_harness.energy.nvml_device import (
    MIB,
    DeviceQueries,
    NvmlSession,
    device_facts,
    scaled,
)
from llem_harness.energy.timeseries import (
    power_integral_per_gpu,
    throttle_bits,
    window_warnings,
)


def _delta_j(begin_mj: float | None, end_mj: float | None) -> float | None:
    return None if begin_mj is None or end_mj is None else (end_mj - begin_mj) / 1000.0


class NvmlMeter:
    """Energy from the NVML counter (power integral where unsupported), sampled timeseries."""

    name = "nvml"

    def __init__(
        self,
        gpu_indices: list[int],
        sample_interval_ms: int,
        *,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        background: bool = True,  # False: no thread; samples come from sample_once() calls
    ) -> None:
        if not gpu_indices:
            raise ValueError("NvmlMeter needs at least one GPU index")
        self.gpu_indices = list(gpu_indices)
        self.interval_s = sample_interval_ms / 1000.0
        self.baseline_power_w: float | None = None
        self.last_throttle_bits = 0  # non-benign clocks-event bits of the latest window
        self._nvml_arg, self._nvml = nvml, None
        self._clock, self._sleep, self._background = clock, sleep, background
        self._t0 = 0.0
        self._devices = DeviceQueries()
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._window: tuple[float, dict[int, float | None]] | None = None

    def start(self) -> None:
        if self._nvml is not None:
            return
        m = NvmlSession.acquire(self._nvml_arg)
        try:
            self._devices.open(m, self.gpu_indices)
        except Exception:
            NvmlSession.release()
            raise
        self._nvml, self._t0 = m, self._clock()
        self._stop_event.clear()
        self.sample_once()
        if self._background:
            self._thread = threading.Thread(target=self._run, name="llem-nvml", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 * self.interval_s))
            self._thread = None
        if self._nvml is not None:
            self._nvml = None
            NvmlSession.release()

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.sample_once()
            except Exception:  # a failed sweep must never end the sampler
                continue

    def _now(self) -> float:
        return self._clock() - self._t0

    def sample_once(self) -> list[Sample]:
        """Read every device now (energy counter first), record and return the rows."""
        if self._nvml is None:
            raise RuntimeError("NvmlMeter.start() was not called")
        t = self._now()
        rows = []
        for gpu in self.gpu_indices:
            energy = self._devices.query(gpu, "nvmlDeviceGetTotalEnergyConsumption")
            power = self._devices.instant_power_mw(gpu)
            if power is None:  # averaged over ~1 s on A100/H100: lags the window's edges
                power = self._devices.query(gpu, "nvmlDeviceGetPowerUsage")
            temp_sensor = getattr(self._nvml, "NVML_TEMPERATURE_GPU", 0)
            temp = self._devices.query(gpu, "nvmlDeviceGetTemperature", temp_sensor)
            mem = self._devices.query(gpu, "nvmlDeviceGetMemoryInfo")
            util = self._devices.query(gpu, "nvmlDeviceGetUtilizationRates")
            reasons = self._devices.query(gpu, "nvmlDeviceGetCurrentClocksEventReasons")
            if reasons is None:
                reasons = self._devices.query(gpu, "nvmlDeviceGetCurrentClocksThrottleReasons")
            rows.append(
                Sample(
                    t,
                    gpu,
                    scaled(power, 1e-3),
                    scaled(energy),
                    scaled(temp),
                    None if mem is None else mem.used / MIB,
                    None if util is None else float(util.gpu),
                    None if reasons is None else int(reasons),
                )
            )
        with self._lock:
            self._samples.extend(rows)
        return rows

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def measure_baseline(self, seconds: float) -> float | None:
        t_start = self.sample_once()[0].t_s
        while (left := t_start + seconds - self._now()) > 0:
            self._sleep(min(left, self.interval_s))
            if not self._background:
                self.sample_once()
        t_end = self.sample_once()[0].t_s
        sweeps: dict[float, list[float | None]] = defaultdict(list)
        for s in self.samples():
            if t_start <= s.t_s <= t_end:
                sweeps[s.t_s].append(s.power_w)
        totals = [
            sum(p for p in powers if p is not None)
            for powers in sweeps.values()
            if len(powers) == len(self.gpu_indices) and None not in powers
        ]
        self.baseline_power_w = sum(totals) / len(totals) if totals else None
        return self.baseline_power_w

    def clock_origin(self) -> float:
        """The clock reading at which sample time t_s = 0 (time.monotonic by default)."""
        return self._t0

    def begin_window(self) -> None:
        rows = self.sample_once()
        self._window = (rows[0].t_s, {s.gpu_index: s.energy_mj for s in rows})

    def end_window(self) -> WindowReading:
        if self._window is None:
            raise RuntimeError("end_window() without begin_window()")
        rows = self.sample_once()
        (t0, begin), self._window = self._window, None
        t1, end = rows[0].t_s, {s.gpu_index: s.energy_mj for s in rows}
        samples = self.samples()
        integral = power_integral_per_gpu(samples, t0, t1)
        bits = self.last_throttle_bits = throttle_bits(samples, t0, t1)
        gpus, reason = self.gpu_indices, None
        per_device: dict[str, float] | None = None
        deltas = {g: _delta_j(begin[g], end[g]) for g in gpus}
        if all(d is not None for d in deltas.values()):
            per_device = {str(g): d for g, d in deltas.items() if d is not None}
            method: str | None = "nvml_counter"
        elif all(g in integral for g in gpus):
            per_device, method = {str(g): integral[g] for g in gpus}, "nvml_power_integral"
        else:
            method = None
            reason = "NVML gives neither the energy counter nor power readings for GPU(s) " + (
                ", ".join(str(g) for g in gpus if g not in integral)
            )
        total = sum(per_device.values()) if per_device is not None else None
        return WindowReading(
            duration_s=t1 - t0,
            total_j=total,
            per_device_j=per_device,
            method=method,
            unavailable_reason=reason,
            power_integral_j=sum(integral.values()) if len(integral) == len(gpus) else None,
            throttled=bits != 0,
            warnings=window_warnings(t1 - t0, total, bits),
            start_s=t0,
            end_s=t1,
        )

    def counter_supported(self) -> bool:
        """Whether every device gave an energy-counter reading in the latest sweep."""
        return all(s.energy_mj is not None for s in self.sample_once())

    def devices(self) -> list[Gpu]:
        return device_facts(self.gpu_indices, self._nvml or self._nvml_arg)

    def device_warnings(self) -> list[str]:
        out = [
            f"persistence mode is off on GPU {d.index} ({d.name}): the driver may "
            "re-initialise the GPU between runs; enable it with `nvidia-smi -pm 1`"
            for d in self.devices()
            if d.persistence_mode is False
        ]
        for (gpu, fn), err in sorted(self._devices.unsupported.items()):
            if fn == "nvmlDeviceGetTotalEnergyConsumption":
                out.append(
                    f"the NVML energy counter is unsupported on GPU {gpu} ({err}); energy "
                    "comes from integrating sampled power"
                )
        return out
