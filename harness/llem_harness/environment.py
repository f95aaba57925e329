"""Environment snapshot stored with every result: what ran, on what."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from llem_harness import __version__
from llem_harness.contract import MeasurementSettings, RunnerInfo
from llem_harness.contract_env import CompileCaches, Environment, Gpu
from llem_harness.cpuinfo import cpu_model


def snapshot(
    devices: list[Gpu],
    backend_name: str,
    backend_version: str | None,
    runner: RunnerInfo,
    measurement: MeasurementSettings,
    compile_caches: CompileCaches | None = None,
    gpu_reason: str | None = None,
) -> Environment:
    """What ran, on what. `compile_caches` is caches.configure_compile_caches()'s record:
    which cache folders this run read and filled (they change the load time, not results).
    `gpu_reason` is why the meter measures no GPU, when `devices` is empty."""
    torch_info: dict[str, Any] = {}
    if "torch" in sys.modules:
        import torch

        torch_info = {
            "torch_version": torch.__version__,
            "cuda_runtime_version": torch.version.cuda,
            "cudnn_version": (
                torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
                if torch.cuda.is_available()
                else None
            ),
        }
    env = Environment(
        gpus=devices,
        gpu_count=len(devices),
        driver_version=devices[0].driver_version if devices else None,
        cuda_driver_version=devices[0].cuda_driver_version if devices else None,
        **torch_info,
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        os=platform.platform(),
        python=platform.python_version(),
        backend=backend_name,
        backend_version=backend_version,
        harness_version=__version__,
        runner=runner.type,
        image=runner.image,
        image_digest=runner.image_digest or os.environ.get("LLEM_IMAGE_DIGEST"),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        carbon_intensity_gco2_kwh=measurement.carbon_intensity_gco2_kwh,
        datacenter_pue=measurement.datacenter_pue,
        compile_caches=compile_caches,
    )
    if not devices:
        env.note_no_gpu(gpu_reason)
    return env
