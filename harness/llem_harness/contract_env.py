"""The `environment` block of result.json (schema 1.8), and `backend_details`: what ran, on
what, as typed models.

Every field is optional, so results of the earlier schemas (whose environment had the same
keys, as a plain object) still read. `gpu_count` is the number of GPUs the run measured: 0
where the machine has none the run could see (no NVIDIA driver or library, no visible device),
null where that could not be told, with `gpu_unavailable_reason` (1.8) saying why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from llem_harness.contract_files import StrictModel as _Model

# Why a run saw no GPU, when that means the machine has none it could use (gpu_count 0), as
# the harness's GPU probe and NVML word it; any other reason leaves gpu_count unknown (null).
NO_GPU_REASONS = ("no NVIDIA GPU visible", "NVML Shared Library Not Found", "Driver Not Loaded")


class Gpu(_Model):
    """One GPU the run measured, as NVML describes it; a fact NVML could not give is null."""

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total_mb: float | None = None
    power_limit_w: float | None = None
    persistence_mode: bool | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None


class CacheVar(_Model):
    value: str
    source: str  # harness | user


class BytecodeCache(_Model):
    """Where Python bytecode of the engine went: a prefix under the engine cache, or null with
    the reason; `missing` names the probe files the engine shipped without bytecode."""

    prefix: str | None = None
    source: str | None = None
    reason: str | None = None
    missing: list[str] = Field(default_factory=list)


class CompileCaches(_Model):
    """The compile-cache folders the run read and filled (they change load time, not results)."""

    root: str | None = None
    vars: dict[str, CacheVar] = Field(default_factory=dict)
    reason: str | None = None
    bytecode: BytecodeCache | None = None


class Environment(_Model):
    gpus: list[Gpu] = Field(default_factory=list)
    gpu_count: int | None = None
    gpu_unavailable_reason: str | None = None  # 1.8: why gpus is empty
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    torch_version: str | None = None
    cuda_runtime_version: str | None = None
    cudnn_version: int | None = None
    cpu: str | None = None
    cpu_count: int | None = None
    os: str | None = None
    python: str | None = None
    backend: str | None = None
    backend_version: str | None = None
    harness_version: str | None = None
    runner: str | None = None
    image: str | None = None
    image_digest: str | None = None
    cuda_visible_devices: str | None = None
    carbon_intensity_gco2_kwh: float | None = None
    datacenter_pue: float | None = None
    compile_caches: CompileCaches | None = None

    def note_no_gpu(self, reason: str | None) -> None:
        """With no GPU measured: why, and the count that follows from it (0 where the machine
        has none to see, null where that cannot be told)."""
        self.gpu_unavailable_reason = reason = reason or "no GPU was measured"
        self.gpu_count = 0 if any(r in reason for r in NO_GPU_REASONS) else None

    def upgrade(self, energy_reason: str | None) -> None:
        """A result of schema ≤ 1.7 recorded `gpu_count` 0 for every empty device list: tell
        "no GPU" (0) from "not known" (null) by the energy block's reason, as the host did."""
        if not self.gpus and self.gpu_unavailable_reason is None:
            self.note_no_gpu(energy_reason)

    def power_limit_w(self) -> float | None:
        """The GPUs' common power limit, or None when they differ or none is known."""
        limits = {g.power_limit_w for g in self.gpus}
        return limits.pop() if len(limits) == 1 else None


def before(schema_version: str, version: tuple[int, int]) -> bool:
    """Whether a result's `schema_version` is older than `version` (unreadable: older)."""
    try:
        return tuple(int(part) for part in schema_version.split(".")) < version
    except ValueError:
        return True


class BackendDetails(BaseModel):
    """`backend_details`: the engine's settings as it ran. Each engine's backend returns its
    own subclass, which declares its fields; read back, a result's details keep every key as
    JSON (fields no model declares too), so results of every engine and schema read alike.
    `details["key"]` reads a key, declared or not."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    def __getitem__(self, key: str) -> JsonValue:
        value: JsonValue = self.model_dump(mode="json")[key]
        return value

    def get(self, key: str) -> JsonValue:
        value: JsonValue = self.model_dump(mode="json").get(key)
        return value
