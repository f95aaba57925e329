"""The NVML device layer: the process's NVML session, which GPUs this process may use, and
guarded per-device queries. The meter (energy/nvml.py) measures on top of it.

pynvml (package nvidia-ml-py) is imported only when a session opens; everything here accepts
an `nvml` module argument so that tests can drive it with a fake.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from llem_harness.contract_env import Gpu

MIB = 1024.0 * 1024.0
# nvmlValueType_t -> member of the nvmlValue_t union
_FIELD_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}
_UNSUPPORTED_ERRORS = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound")


class NvmlSession:
    """The process's single owner of NVML: a refcounted nvmlInit/nvmlShutdown."""

    _lock = threading.Lock()
    _refs = 0
    _module: Any = None

    @classmethod
    def acquire(cls, nvml: Any = None) -> Any:
        """nvmlInit on first use; returns the NVML module. Raises what nvmlInit raises."""
        with cls._lock:
            if nvml is None:
                nvml = cls._module
                if nvml is None:
                    import pynvml

                    nvml = pynvml
            if cls._refs == 0:
                nvml.nvmlInit()
                cls._module = nvml
            elif nvml is not cls._module:
                raise RuntimeError("NVML is already open through another module object")
            cls._refs += 1
            return nvml

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            if cls._refs == 0:
                return
            cls._refs -= 1
            if cls._refs == 0:
                module, cls._module = cls._module, None
                _call(module, "nvmlShutdown")

    @classmethod
    def refs(cls) -> int:
        return cls._refs


@contextmanager
def nvml_session(nvml: Any = None) -> Iterator[Any]:
    module = NvmlSession.acquire(nvml)
    try:
        yield module
    finally:
        NvmlSession.release()


def _call(module: Any, fn: str, *args: Any) -> Any:
    """One guarded NVML call: None when it fails or the function does not exist."""
    try:
        return getattr(module, fn)(*args)
    except Exception:
        return None


def scaled(value: Any, factor: float = 1.0) -> float | None:
    """`value` × `factor` as a float; None stays None."""
    return None if value is None else float(value) * factor


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible_devices(spec: str, uuids: list[str]) -> list[int]:
    """NVML indices named by a CUDA_VISIBLE_DEVICES value, given every device's UUID.

    Follows CUDA: tokens are indices or (prefixes of) GPU UUIDs, and the list ends at the
    first token naming no device. Integer tokens are taken as NVML (PCI bus) order, which is
    CUDA's order only with CUDA_DEVICE_ORDER=PCI_BUS_ID or on a machine of one GPU model.
    """
    out: list[int] = []
    for token in (t.strip() for t in spec.split(",")):
        if token.startswith("MIG-"):
            raise ValueError(f"CUDA_VISIBLE_DEVICES names a MIG instance ({token}): unsupported")
        if token.isdigit():
            if int(token) >= len(uuids):
                break
            index = int(token)
        else:
            matches = [i for i, u in enumerate(uuids) if token and u.startswith(token)]
            if not token.startswith("GPU-") or len(matches) != 1:
                break
            index = matches[0]
        if index not in out:
            out.append(index)
    return out


def visible_gpu_indices(nvml: Any = None, env: Mapping[str, str] | None = None) -> list[int]:
    """NVML indices of the GPUs this process may use: CUDA_VISIBLE_DEVICES, or all if unset."""
    spec = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    with nvml_session(nvml) as m:
        count = int(m.nvmlDeviceGetCount())
        if spec is None:
            return list(range(count))
        handles = [m.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(m.nvmlDeviceGetUUID(h)) or "" for h in handles]
    return parse_visible_devices(spec, uuids)


def run_gpus(n: int) -> list[tuple[str, float]] | None:
    """(name, compute capability) of the GPUs a run uses: the first `n` this process may use
    (CUDA_VISIBLE_DEVICES), with no CUDA context in this process. Empty without NVML or
    GPUs; None where NVML cannot tell a capability (the quantization check's input)."""
    try:
        m = NvmlSession.acquire()
    except Exception:  # no NVML library or no driver: no GPU for this run
        return []
    try:
        found = []
        for i in visible_gpu_indices(m)[:n]:
            handle = m.nvmlDeviceGetHandleByIndex(i)
            capability = _call(m, "nvmlDeviceGetCudaComputeCapability", handle)
            if capability is None:
                return None
            major, minor = capability
            found.append((_text(m.nvmlDeviceGetName(handle)) or "", major + minor / 10))
        return found
    finally:
        NvmlSession.release()


class DeviceQueries:
    """Guarded per-device NVML queries on open handles: a query the device or driver does not
    support returns None and is not asked again (`unsupported` keeps why, for warnings)."""

    def __init__(self) -> None:
        self.nvml: Any = None
        self.handles: dict[int, Any] = {}
        self.unsupported: dict[tuple[int, str], str] = {}  # (gpu, NVML function) -> error

    def open(self, nvml: Any, gpu_indices: list[int]) -> None:
        self.nvml = nvml
        self.handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in gpu_indices}

    def query(self, gpu: int, fn: str, *args: Any) -> Any:
        """One guarded per-device query; an unsupported one is remembered and not retried."""
        if (gpu, fn) in self.unsupported:
            return None
        try:
            return getattr(self.nvml, fn)(self.handles[gpu], *args)
        except Exception as exc:
            kinds = tuple(getattr(self.nvml, n, None) for n in _UNSUPPORTED_ERRORS)
            if isinstance(exc, AttributeError) or any(
                isinstance(k, type) and isinstance(exc, k) for k in kinds
            ):
                self.unsupported[(gpu, fn)] = str(exc) or type(exc).__name__
            return None

    def instant_power_mw(self, gpu: int) -> float | None:
        """Instantaneous power (NVML_FI_DEV_POWER_INSTANT, mW) where the driver has the field."""
        field = getattr(self.nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None or (gpu, "power_instant") in self.unsupported:
            return None
        values = self.query(gpu, "nvmlDeviceGetFieldValues", [field])
        if not values or values[0].nvmlReturn != 0:
            self.unsupported[(gpu, "power_instant")] = "field not supported"
            return None
        v = values[0]
        kind = _FIELD_VALUE_MEMBERS.get(int(v.valueType))
        return None if kind is None else float(getattr(v.value, kind))


def device_facts(gpu_indices: list[int], nvml: Any = None) -> list[Gpu]:
    """Per-device facts for the environment snapshot; a fact NVML cannot give is None."""
    with nvml_session(nvml) as m:
        driver = _text(_call(m, "nvmlSystemGetDriverVersion"))
        cuda = _call(m, "nvmlSystemGetCudaDriverVersion")
        out = []
        for i in gpu_indices:
            h = _call(m, "nvmlDeviceGetHandleByIndex", i)
            mem = _call(m, "nvmlDeviceGetMemoryInfo", h)
            limit = _call(m, "nvmlDeviceGetEnforcedPowerLimit", h)
            if limit is None:
                limit = _call(m, "nvmlDeviceGetPowerManagementLimit", h)
            persistence = _call(m, "nvmlDeviceGetPersistenceMode", h)
            out.append(
                Gpu(
                    index=i,
                    name=_text(_call(m, "nvmlDeviceGetName", h)),
                    uuid=_text(_call(m, "nvmlDeviceGetUUID", h)),
                    memory_total_mb=None if mem is None else mem.total / MIB,
                    power_limit_w=None if limit is None else limit / 1000.0,
                    persistence_mode=None if persistence is None else persistence == 1,
                    driver_version=driver,
                    cuda_driver_version=(
                        None if cuda is None else f"{cuda // 1000}.{cuda % 1000 // 10}"
                    ),
                )
            )
    return out


def cuda_gpu_indices(n: int) -> list[int] | None:
    """NVML indices of CUDA ordinals 0..n-1, or None to let the meter decide."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # ordinals in NVML (PCI) order
    try:
        visible = visible_gpu_indices()
    except Exception:
        return None
    return visible[:n] if visible else None


def compute_processes(gpu_indices: list[int], nvml: Any = None) -> int | None:
    """How many processes hold a compute (CUDA) context on these GPUs, by NVML's list; None
    where NVML cannot tell. Inside a container NVML may list none: a count of 0 there is
    NVML's view, not proof that no context is open."""
    try:
        with nvml_session(nvml) as m:
            pids: set[int] = set()
            for i in gpu_indices:
                handle = m.nvmlDeviceGetHandleByIndex(i)
                pids |= {int(p.pid) for p in m.nvmlDeviceGetComputeRunningProcesses(handle)}
            return len(pids)
    except Exception:
        return None
