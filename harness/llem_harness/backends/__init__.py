"""Inference backends: the registry, and each engine imported only when it runs.

`BACKENDS` maps a backend name to the class that implements `base.Backend`. Add a backend by
writing that class (and its options in config.py) and naming it here.
"""

from __future__ import annotations

import importlib

from llem_harness.backends.base import Backend, PassResult

BACKEND_CLASSES: dict[str, str] = {
    "pytorch": "llem_harness.backends.pytorch:PyTorchBackend",
    "vllm": "llem_harness.backends.vllm:VLLMBackend",
    "tensorrt": "llem_harness.backends.tensorrt:TensorRTBackend",
}


def get_backend(name: str) -> Backend:
    """A new, unloaded backend; its module is imported now, not before."""
    target = BACKEND_CLASSES.get(name)
    if target is None:
        raise ValueError(f"backend `{name}` is not available in this harness build")
    module, cls = target.split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend


__all__ = ["BACKEND_CLASSES", "Backend", "PassResult", "get_backend"]
