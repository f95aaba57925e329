"""The energy-meter layer, driven by a fake NVML module and a controllable clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llem_harness.contract import MeasurementSettings
from llem_harness.energy import (
    NullMeter,
    NvmlMeter,
    Sample,
    ZeusMeter,
    adjusted_energy_j,
    co2_kg,
    make_meter,
    power_integral_j,
    read_timeseries,
    write_timeseries,
)
from llem_harness.energy.nvml_device import (
    NvmlSession,
    parse_visible_devices,
    visible_gpu_indices,
)
from llem_harness.energy.timeseries import COLUMNS, power_integral_per_gpu
from llem_harness.energy.zeus import ZEUS_MISSING

DATA = Path(__file__).parent / "data"
UUIDS = ["GPU-1111aaaa-0000-0000-0000-000000000000", "GPU-2222bbbb-0000-0000-0000-000000000000"]


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeGpu:
    """power(t) in W; energy(t) in mJ (the NVML counter) unless `counter` is False."""

    power: Callable[[float], float]
    energy: Callable[[float], float]
    uuid: str = UUIDS[0]
    counter: bool = True
    power_supported: bool = True
    instant_power: bool = True  # NVML_FI_DEV_POWER_INSTANT answers
    reasons: Callable[[float], int] = lambda t: 0
    persistence: int = 1
    temperature_error: bool = False


def constant(watts: float, e0_mj: float = 5e9) -> tuple[Callable[[float], float], ...]:
    return (lambda t: watts), (lambda t: e0_mj + watts * t * 1000.0)


def ramp(a: float, b: float, e0_mj: float = 1e9) -> tuple[Callable[[float], float], ...]:
    """P(t) = a + b·t, counter = its exact integral."""
    return (lambda t: a + b * t), (lambda t: e0_mj + (a * t + b * t * t / 2) * 1000.0)


def gpu(trace: tuple[Callable[[float], float], ...], **kw: Any) -> FakeGpu:
    return FakeGpu(trace[0], trace[1], **kw)


class FakeNvml:
    """The subset of pynvml the meters use, with pynvml's units (mW, mJ, bytes)."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVML_TEMPERATURE_GPU = 0
    NVML_FI_DEV_POWER_INSTANT = 186

    def __init__(
        self, now: Callable[[], float], gpus: list[FakeGpu], *, event_reasons: bool = True
    ) -> None:
        self.now, self.gpus, self.event_reasons = now, gpus, event_reasons
        self.inits = self.shutdowns = 0
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        if not 0 <= i < len(self.gpus):
            raise NVMLError("Invalid Argument")
        return self.gpus[i]

    def nvmlDeviceGetIndex(self, h: FakeGpu) -> int:
        return self.gpus.index(h)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        self._count("energy")
        if not h.counter:
            raise NVMLError_NotSupported("Not Supported")
        return int(h.energy(self.now()))

    def nvmlDeviceGetFieldValues(self, h: FakeGpu, fields: list[int]) -> list[SimpleNamespace]:
        self._count("field_values")
        ok = fields == [self.NVML_FI_DEV_POWER_INSTANT] and h.power_supported and h.instant_power
        mw = round(h.power(self.now()) * 1000.0) if ok else 0
        return [
            SimpleNamespace(nvmlReturn=0 if ok else 3, valueType=1, value=SimpleNamespace(uiVal=mw))
        ]

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        self._count("power_usage")
        if not h.power_supported:
            raise NVMLError_NotSupported("Not Supported")
        return round(h.power(self.now()) * 1000.0)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        if h.temperature_error:
            raise NVMLError("Unknown Error")
        return 55

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(used=2 * 1024**3, total=80 * 1024**3, free=78 * 1024**3)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=93, memory=40)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        if not self.event_reasons:
            raise NVMLError_FunctionNotFound("Function Not Found")
        return h.reasons(self.now())

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeGpu) -> int:
        self._count("throttle")
        return h.reasons(self.now())

    def nvmlDeviceGetName(self, h: FakeGpu) -> bytes:
        return b"NVIDIA H100 80GB HBM3"  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        return 700_000

    def nvmlDeviceGetPersistenceMode(self, h: FakeGpu) -> int:
        return h.persistence

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


@dataclass
class Rig:
    clock: Clock
    nvml: FakeNvml
    meter: NvmlMeter
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, seconds: float, interval: float = 0.1) -> None:
        """What the sampler thread does, on the fake clock."""
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            self.clock.sleep(min(interval, end - self.clock.now))
            self.meter.sample_once()


@pytest.fixture(autouse=True)
def nvml_released() -> Iterator[None]:
    yield
    assert NvmlSession.refs() == 0, "a test left an NVML session open"


def rig(gpus: list[FakeGpu], *, event_reasons: bool = True, start: bool = True) -> Rig:
    clock = Clock()
    nvml = FakeNvml(clock, gpus, event_reasons=event_reasons)
    meter = NvmlMeter(
        list(range(len(gpus))), 100, nvml=nvml, clock=clock, sleep=clock.sleep, background=False
    )
    if start:
        meter.start()
    return Rig(clock, nvml, meter)


def window(r: Rig, seconds: float) -> Any:
    r.meter.begin_window()
    r.run(seconds)
    return r.meter.end_window()


# --- windows -----------------------------------------------------------------------------


def test_counter_window_energy_per_device() -> None:
    r = rig([gpu(constant(300.0)), gpu(constant(150.0, e0_mj=7e9), uuid=UUIDS[1])])
    r.run(1.0)
    reading = window(r, 20.0)
    r.meter.stop()
    assert reading.method == "nvml_counter"
    assert reading.duration_s == pytest.approx(20.0)
    assert reading.per_device_j == pytest.approx({"0": 6000.0, "1": 3000.0}, abs=0.002)
    assert reading.total_j == pytest.approx(9000.0, abs=0.004)
    assert reading.unavailable_reason is None
    assert reading.throttled is False
    assert reading.warnings == []


def test_counter_read_directly_at_the_edges_not_only_from_the_sampler() -> None:
    r = rig([gpu(constant(250.0))])
    r.meter.begin_window()
    r.clock.sleep(12.0)  # no sampler sweep in between: the edges alone carry the energy
    reading = r.meter.end_window()
    r.meter.stop()
    assert reading.total_j == pytest.approx(3000.0, abs=0.002)
    assert reading.power_integral_j == pytest.approx(3000.0, rel=1e-6)
    assert reading.start_s is not None and reading.end_s is not None
    assert reading.end_s - reading.start_s == pytest.approx(12.0)  # on the timeseries clock


def test_power_integral_fallback_when_counter_not_supported() -> None:
    r = rig([gpu(constant(300.0), counter=False), gpu(constant(100.0), counter=False)])
    reading = window(r, 15.0)
    assert reading.method == "nvml_power_integral"
    assert reading.per_device_j == pytest.approx({"0": 4500.0, "1": 1500.0}, rel=1e-6)
    assert reading.total_j == pytest.approx(6000.0, rel=1e-6)
    assert reading.power_integral_j == pytest.approx(reading.total_j)
    # an unsupported query is remembered, not retried at every sample
    assert r.nvml.calls["energy"] == 2
    assert any("energy counter is unsupported on GPU 0" in w for w in r.meter.device_warnings())
    assert all(s.energy_mj is None for s in r.meter.samples())
    r.meter.stop()


def test_neither_counter_nor_power_gives_none_with_reason() -> None:
    r = rig([gpu(constant(300.0), counter=False, power_supported=False)])
    reading = window(r, 12.0)
    r.meter.stop()
    assert reading.total_j is None and reading.per_device_j is None and reading.method is None
    assert reading.power_integral_j is None
    assert reading.unavailable_reason is not None and "GPU(s) 0" in reading.unavailable_reason


@pytest.mark.parametrize(
    "trace", [constant(300.0), ramp(120.0, 9.0), ramp(400.0, -12.5)], ids=["const", "up", "down"]
)
def test_power_integral_agrees_with_counter(trace: tuple[Callable[[float], float], ...]) -> None:
    r = rig([gpu(trace)])
    r.run(2.0)
    reading = window(r, 20.0)
    r.meter.stop()
    assert reading.method == "nvml_counter"
    assert reading.power_integral_j == pytest.approx(reading.total_j, rel=1e-3)


def test_recorded_trace_integral_matches_counter_within_2_percent() -> None:
    rows = json.loads((DATA / "recorded_trace_3s_10hz.json").read_text())
    samples = [Sample(**row) for row in rows]
    assert len(samples) == 31 and all(250 < (s.power_w or 0) < 350 for s in samples)
    t0, t1 = samples[0].t_s, samples[-1].t_s
    counter_j = ((samples[-1].energy_mj or 0) - (samples[0].energy_mj or 0)) / 1000.0
    integral = power_integral_j(samples, t0, t1)
    assert integral is not None
    assert counter_j == pytest.approx(920.0, rel=0.05)  # ~300 W over 3 s
    assert integral == pytest.approx(counter_j, rel=0.02)


# --- baseline ----------------------------------------------------------------------------


def test_baseline_and_adjusted_energy() -> None:
    def power(t: float) -> float:  # idle until t=1010 (meter clock), then loaded
        return 60.0 if t < 1010.0 else 310.0

    def energy(t: float) -> float:
        return 1e9 + 1000.0 * (60.0 * min(t, 1010.0) + 310.0 * max(0.0, t - 1010.0))

    r = rig([FakeGpu(power, energy), FakeGpu(power, energy, uuid=UUIDS[1])])
    baseline = r.meter.measure_baseline(5.0)
    assert baseline == pytest.approx(120.0)  # summed over both GPUs
    assert r.meter.baseline_power_w == baseline
    assert r.clock.now == pytest.approx(1005.0)
    r.run(5.0)  # "model load"
    reading = window(r, 20.0)
    r.meter.stop()
    assert reading.total_j == pytest.approx(2 * 310.0 * 20.0, abs=0.01)
    adjusted = adjusted_energy_j(reading.total_j, baseline, reading.duration_s)
    assert adjusted == pytest.approx(2 * (310.0 - 60.0) * 20.0, abs=0.01)


def test_baseline_none_without_power_readings() -> None:
    r = rig([gpu(constant(70.0), power_supported=False)])
    assert r.meter.measure_baseline(2.0) is None
    r.meter.stop()
    assert adjusted_energy_j(100.0, None, 10.0) is None
    assert adjusted_energy_j(None, 50.0, 10.0) is None


def test_baseline_with_background_sampler_thread() -> None:
    nvml = FakeNvml(time.monotonic, [gpu(constant(75.0))])
    meter = NvmlMeter([0], 10, nvml=nvml)
    meter.start()
    try:
        assert meter.measure_baseline(0.3) == pytest.approx(75.0)
        assert len(meter.samples()) >= 5  # the thread sampled meanwhile
    finally:
        meter.stop()
    meter.stop()  # idempotent
    assert nvml.inits == 1 and nvml.shutdowns == 1


# --- warnings and throttling -------------------------------------------------------------


def test_short_window_warning() -> None:
    r = rig([gpu(constant(300.0))])
    reading = window(r, 4.0)
    r.meter.stop()
    assert reading.total_j == pytest.approx(1200.0, abs=0.002)
    assert any(w.startswith("short measurement window: 4.00 s < 10 s;") for w in reading.warnings)


def test_throttling_flagged_but_benign_reasons_ignored() -> None:
    def reasons(t: float) -> int:
        return 0x4 if 1005.0 <= t < 1006.0 else 0x1 | 0x2  # SwPowerCap for one second

    r = rig([gpu(constant(300.0), reasons=reasons)])
    quiet = window(r, 3.0)  # 1000..1003: idle/app-clocks bits only
    loud = window(r, 12.0)
    r.meter.stop()
    assert quiet.throttled is False and not any("throttling" in w for w in quiet.warnings)
    assert loud.throttled is True
    assert any("throttling" in w and "SwPowerCap" in w and "0x4" in w for w in loud.warnings)


def test_throttle_reasons_fall_back_to_legacy_call() -> None:
    r = rig([gpu(constant(300.0), reasons=lambda t: 0x40)], event_reasons=False)
    reading = window(r, 11.0)
    r.meter.stop()
    assert r.nvml.calls["throttle"] > 0
    assert all(s.throttle_reasons == 0x40 for s in r.meter.samples())
    assert reading.throttled and any("HwThermalSlowdown" in w for w in reading.warnings)


def test_zero_energy_warning() -> None:
    r = rig([gpu(constant(0.0))])
    reading = window(r, 12.0)
    r.meter.stop()
    assert reading.total_j == 0.0
    assert any(w.startswith("zero or negative energy measured") for w in reading.warnings)


def test_failing_query_gives_none_for_that_field_only() -> None:
    r = rig([gpu(constant(300.0), temperature_error=True)])
    r.run(0.5)
    r.meter.stop()
    s = r.meter.samples()[-1]
    assert s.temperature_c is None
    assert s.power_w == 300.0 and s.energy_mj is not None and s.sm_util_pct == 93.0
    assert s.memory_used_mb == pytest.approx(2048.0)


def test_window_edges_misuse() -> None:
    r = rig([gpu(constant(300.0))], start=False)
    with pytest.raises(RuntimeError, match="start"):
        r.meter.begin_window()
    r.meter.start()
    with pytest.raises(RuntimeError, match="begin_window"):
        r.meter.end_window()
    r.meter.stop()


# --- devices and GPU mapping -------------------------------------------------------------


def test_devices_and_persistence_warning() -> None:
    r = rig([gpu(constant(1.0)), gpu(constant(1.0), uuid=UUIDS[1], persistence=0)], start=False)
    devices = r.meter.devices()  # works before start(), opening its own session
    assert devices[0].model_dump() == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": UUIDS[0],
        "memory_total_mb": 81920.0,
        "power_limit_w": 700.0,
        "persistence_mode": True,
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
    }
    assert devices[1].persistence_mode is False
    warnings = r.meter.device_warnings()
    assert len(warnings) == 1 and warnings[0].startswith("persistence mode is off on GPU 1")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0,1", [0, 1]),
        ("1", [1]),
        ("1,0", [1, 0]),
        (" 1 , 0 ", [1, 0]),
        ("0,7,1", [0]),  # CUDA stops at the first invalid entry
        ("", []),
        (UUIDS[1], [1]),
        ("GPU-2222bbbb,GPU-1111", [1, 0]),  # unique UUID prefixes
        (f"{UUIDS[0]},1", [0, 1]),
        ("GPU-ffff", []),
    ],
)
def test_parse_visible_devices(spec: str, expected: list[int]) -> None:
    assert parse_visible_devices(spec, UUIDS) == expected


def test_parse_visible_devices_rejects_mig() -> None:
    with pytest.raises(ValueError, match="MIG"):
        parse_visible_devices("MIG-4b3f-1234", UUIDS)


def test_visible_gpu_indices_through_nvml() -> None:
    nvml = FakeNvml(Clock(), [gpu(constant(1.0)), gpu(constant(1.0), uuid=UUIDS[1])])
    assert visible_gpu_indices(nvml, env={}) == [0, 1]
    assert visible_gpu_indices(nvml, env={"CUDA_VISIBLE_DEVICES": "1"}) == [1]
    assert visible_gpu_indices(nvml, env={"CUDA_VISIBLE_DEVICES": UUIDS[1]}) == [1]
    assert nvml.inits == nvml.shutdowns == 3


def test_session_is_refcounted_and_single_owner() -> None:
    nvml = FakeNvml(Clock(), [gpu(constant(1.0))])
    a = NvmlMeter([0], 100, nvml=nvml, background=False)
    b = NvmlMeter([0], 100, nvml=nvml, background=False)
    a.start()
    b.start()
    with pytest.raises(RuntimeError, match="another module"):
        NvmlMeter([0], 100, nvml=FakeNvml(Clock(), []), background=False).start()
    a.stop()
    assert nvml.shutdowns == 0
    b.stop()
    b.stop()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


# --- timeseries --------------------------------------------------------------------------


def test_timeseries_roundtrip_with_none_fields(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    samples = [
        Sample(0.1, 1, 301.5, 5.5e9, 60.0, 2048.0, 95.0, 0x4),
        Sample(0.0, 0, None, None, None, None, None, None),
        Sample(0.1, 0, 299.0, 4.0e9, 58.0, 1024.0, 90.0, 0),
    ]
    path = tmp_path / "ts" / "timeseries.parquet"
    assert write_timeseries(samples, path) == 3
    schema = pq.read_schema(path)
    assert tuple(schema.names) == COLUMNS
    assert schema.field("gpu_index").type == pa.int32()
    assert schema.field("throttle_reasons").type == pa.int64()
    assert not schema.field("t_s").nullable and schema.field("power_w").nullable
    back = read_timeseries(path)
    assert back == sorted(samples, key=lambda s: (s.t_s, s.gpu_index))


def test_timeseries_empty_file_keeps_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "empty.parquet"
    assert write_timeseries([], path) == 0
    assert tuple(pq.read_schema(path).names) == COLUMNS
    assert read_timeseries(path) == []


def test_meter_samples_roundtrip(tmp_path: Path) -> None:
    r = rig([gpu(constant(300.0)), gpu(constant(200.0), uuid=UUIDS[1])])
    r.run(1.0)
    r.meter.stop()
    path = tmp_path / "t.parquet"
    assert write_timeseries(r.meter.samples(), path) == 2 * 11
    assert {s.gpu_index for s in read_timeseries(path)} == {0, 1}


def test_power_integral_interpolates_at_edges_and_sums_gpus() -> None:
    samples = [Sample(float(t), 0, 100.0 * t, None, None, None, None, None) for t in range(3)]
    samples += [Sample(float(t), 1, 50.0, None, None, None, None, None) for t in range(3)]
    assert power_integral_per_gpu(samples, 0.5, 1.5) == pytest.approx({0: 100.0, 1: 50.0})
    assert power_integral_j(samples, 0.0, 2.0) == pytest.approx(200.0 + 100.0)
    assert power_integral_j(samples, 5.0, 6.0) is None
    assert power_integral_j([], 0.0, 1.0) is None


# --- CO2 ---------------------------------------------------------------------------------


def test_co2_formula() -> None:
    assert co2_kg(3.6e6, 400.0, 1.0) == pytest.approx(0.4)  # 1 kWh at 400 g/kWh
    assert co2_kg(3.6e6, 400.0, 1.5) == pytest.approx(0.6)
    assert co2_kg(1800.0, 250.0, 1.2) == pytest.approx(1800 / 3.6e6 * 250 * 1.2 / 1000)
    assert co2_kg(None, 400.0, 1.0) is None


def test_codecarbon_missing_is_a_clear_error() -> None:
    try:
        import codecarbon  # noqa: F401
    except ImportError:
        from llem_harness.energy import CodeCarbonTracker

        with pytest.raises(RuntimeError, match=r"pip install llem-harness\[codecarbon\]"):
            CodeCarbonTracker("FRA")
    else:
        pytest.skip("codecarbon is installed")


# --- factory and null meter --------------------------------------------------------------


def test_make_meter_none() -> None:
    meter = make_meter(MeasurementSettings(energy_backend="none"))
    assert isinstance(meter, NullMeter)
    meter.start()
    assert meter.measure_baseline(1.0) is None
    meter.begin_window()
    reading = meter.end_window()
    meter.stop()
    assert reading.total_j is None and reading.method is None and reading.power_integral_j is None
    assert reading.unavailable_reason == "energy measurement disabled (energy_backend: none)"
    assert reading.duration_s >= 0.0
    assert meter.samples() == [] and meter.devices() == []


def test_make_meter_auto_without_nvml_library_degrades() -> None:
    meter = make_meter(MeasurementSettings(energy_backend="auto"))  # no NVML on this machine
    assert isinstance(meter, NullMeter)
    assert meter.reason.startswith("NVML unavailable: ")


def test_make_meter_explicit_backends_fail_loudly() -> None:
    with pytest.raises(RuntimeError, match="energy_backend nvml requested but NVML unavailable"):
        make_meter(MeasurementSettings(energy_backend="nvml"))
    try:
        import zeus  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError) as info:
            make_meter(MeasurementSettings(energy_backend="zeus"))
        assert str(info.value) == ZEUS_MISSING


def test_make_meter_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml(Clock(), [gpu(constant(1.0)), gpu(constant(1.0), uuid=UUIDS[1])])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    meter = make_meter(MeasurementSettings(energy_backend="auto", sample_interval_ms=50), nvml=nvml)
    assert isinstance(meter, NvmlMeter)
    assert meter.gpu_indices == [1] and meter.interval_s == 0.05
    explicit = make_meter(MeasurementSettings(energy_backend="nvml"), [0, 1], nvml=nvml)
    assert isinstance(explicit, NvmlMeter) and explicit.gpu_indices == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    none = make_meter(MeasurementSettings(energy_backend="auto"), nvml=nvml)
    assert isinstance(none, NullMeter) and none.reason == "no NVIDIA GPU visible"
    empty = make_meter(MeasurementSettings(), nvml=FakeNvml(Clock(), []))
    assert isinstance(empty, NullMeter) and empty.reason == "no NVIDIA GPU visible"
    bad = make_meter(MeasurementSettings(), [3], nvml=nvml)
    assert isinstance(bad, NullMeter) and "[3] do not exist" in bad.reason


# --- Zeus --------------------------------------------------------------------------------


class FakeZeusMonitor:
    def __init__(self, clock: Clock, gpus: list[FakeGpu], **kwargs: Any) -> None:
        self.clock, self.gpus, self.kwargs = clock, gpus, kwargs
        self.open: dict[str, tuple[float, list[float]]] = {}

    def _energy(self) -> list[float]:
        return [g.energy(self.clock.now) / 1000.0 for g in self.gpus]

    def begin_window(self, key: str, sync_execution: bool = True) -> None:
        assert sync_execution is False
        self.open[key] = (self.clock.now, self._energy())

    def end_window(self, key: str, sync_execution: bool = True) -> SimpleNamespace:
        t0, e0 = self.open.pop(key)
        energy = {
            i: e - b for i, (e, b) in enumerate(zip(self._energy(), e0, strict=True))
        }  # keyed by CUDA ordinal
        return SimpleNamespace(time=self.clock.now - t0, gpu_energy=energy)


def test_zeus_meter_maps_cuda_ordinals_to_nvml_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [gpu(constant(100.0)), gpu(constant(300.0), uuid=UUIDS[1])]
    clock = Clock()
    nvml = FakeNvml(clock, gpus)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # NVML GPU 1 is CUDA ordinal 0
    made: list[FakeZeusMonitor] = []

    def factory(**kwargs: Any) -> FakeZeusMonitor:
        made.append(FakeZeusMonitor(clock, [gpus[1]], **kwargs))
        return made[-1]

    inner = NvmlMeter([1], 100, nvml=nvml, clock=clock, sleep=clock.sleep, background=False)
    meter = ZeusMeter([1], 100, nvml_meter=inner, monitor_factory=factory)
    meter.start()
    # cpu_indices=None: every RAPL package Zeus can read (none, without an error, here)
    assert made[0].kwargs == {
        "gpu_indices": [0],
        "cpu_indices": None,
        "approx_instant_energy": True,
    }
    assert meter.measure_baseline(1.0) == pytest.approx(300.0)
    meter.begin_window()
    clock.sleep(12.0)
    reading = meter.end_window()
    meter.stop()
    meter.stop()
    assert reading.method == "zeus"
    assert reading.per_device_j == pytest.approx({"1": 3600.0}, abs=0.002)
    assert reading.power_integral_j == pytest.approx(3600.0, rel=1e-6)
    assert reading.duration_s == pytest.approx(12.0) and reading.warnings == []
    assert meter.samples() and meter.devices()[0].uuid == UUIDS[1]
    assert reading.cpu is None  # Zeus read no CPU: the harness's RAPL reader says why


def test_zeus_meter_gives_its_cpu_and_dram_energy() -> None:
    from llem_harness.energy.base import CpuReading
    from llem_harness.energy.rapl import cpu_fields
    from llem_harness.energy.zeus import _cpu

    zeus = SimpleNamespace(time=1.0, gpu_energy={}, cpu_energy={0: 12.0, 1: 8.0},
                           dram_energy={0: 3.0, 1: 1.5})  # fmt: skip
    cpu = _cpu(zeus)
    assert cpu == CpuReading(cpu_j=20.0, dram_j=4.5, per_package_j={"0": 12.0, "1": 8.0})
    own = CpuReading(unavailable_reason="not readable by this user: ...")
    fields = cpu_fields(own, cpu)
    assert fields["cpu_method"] == "zeus" and fields["cpu_j"] == 20.0
    assert fields["cpu_unavailable_reason"] is None and fields["dram_j"] == 4.5
    assert _cpu(SimpleNamespace(time=1.0, gpu_energy={}, cpu_energy=None)) is None
    fallback = cpu_fields(own, None)
    assert fallback["cpu_j"] is None and fallback["cpu_method"] is None
    assert fallback["cpu_unavailable_reason"] == own.unavailable_reason


def test_zeus_meter_gives_the_steady_state_window_its_energy() -> None:
    """The steady window maps request times onto samples through the meter's clock origin;
    ZeusMeter once lacked it, so steady_state.energy_j was always null under Zeus."""
    from llem_harness.energy.base import EnergyMeter
    from llem_harness.steady import measure_steady

    clock = Clock()
    nvml = FakeNvml(clock, [gpu(constant(250.0))])
    inner = NvmlMeter([0], 100, nvml=nvml, clock=clock, sleep=clock.sleep, background=False)
    meter: EnergyMeter = ZeusMeter(
        [0],
        100,
        nvml_meter=inner,
        monitor_factory=lambda **kw: FakeZeusMonitor(clock, nvml.gpus, **kw),
        cuda_indices=[0],
    )
    meter.start()
    origin = meter.clock_origin()
    assert origin is not None and origin == inner.clock_origin()
    meter.begin_window()
    t_begin = clock.now
    for _ in range(40):  # the sampler's sweeps, driven by hand (background=False)
        clock.sleep(0.1)
        inner.sample_once()
    meter.end_window()
    # two waves of two requests each, inside the 4 s of samples
    spans = [(t_begin + 0.5 + w, t_begin + 1.5 + w, 5) for w in (0.0, 0.0, 1.5, 1.5)]
    got = measure_steady(spans, 2, meter.samples(), meter.clock_origin())
    assert meter.device_warnings() == [] and meter.counter_supported()
    meter.stop()
    assert got.unavailable_reason is None and got.duration_s
    assert got.energy_j == pytest.approx(250.0 * got.duration_s, rel=1e-6)


def test_null_meter_declares_the_whole_protocol() -> None:
    from llem_harness.energy.base import EnergyMeter
    from llem_harness.energy.null import NullMeter

    meter: EnergyMeter = NullMeter("no GPU")
    assert meter.clock_origin() is None and not meter.counter_supported()
    assert meter.device_warnings() == []


def test_zeus_meter_refuses_gpus_without_counter() -> None:
    clock = Clock()
    nvml = FakeNvml(clock, [gpu(constant(100.0), counter=False)])
    meter = ZeusMeter([0], 100, nvml=nvml, monitor_factory=lambda **kw: None, cuda_indices=[0])
    with pytest.raises(RuntimeError, match="energy counter"):
        meter.start()


def test_zeus_meter_without_zeus_package() -> None:
    try:
        import zeus  # noqa: F401
    except ImportError:
        meter = ZeusMeter([0], 100, nvml=FakeNvml(Clock(), [gpu(constant(1.0))]))
        with pytest.raises(RuntimeError) as info:
            meter.start()
        assert str(info.value) == ZEUS_MISSING
    else:
        pytest.skip("zeus is installed")


# --- power source ------------------------------------------------------------------------


def test_instantaneous_power_field_is_preferred() -> None:
    r = rig([gpu(constant(300.0))])
    r.run(1.0)
    r.meter.stop()
    assert r.nvml.calls.get("field_values", 0) > 0
    assert r.nvml.calls.get("power_usage", 0) == 0
    assert {s.power_w for s in r.meter.samples()} == {300.0}


def test_averaged_power_when_the_field_is_unsupported() -> None:
    r = rig([gpu(constant(300.0), instant_power=False)])
    r.run(1.0)
    r.meter.stop()
    assert r.nvml.calls["field_values"] == 1  # asked once, then remembered as unsupported
    assert r.nvml.calls["power_usage"] > 1
    assert {s.power_w for s in r.meter.samples()} == {300.0}
