"""llem-docker: the host-side orchestrator. Never imports torch, vLLM or TensorRT-LLM.

The public API is what this module exports; everything else is internal. The exports load
on first use, so `llem-docker --help` and a refused study file answer without importing the
study loop, pyarrow and the Docker SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llem_harness.host_api import ExperimentConfig, __version__

if TYPE_CHECKING:
    from llem_docker.api import run_experiment, run_study
    from llem_docker.store.load import load_results
    from llem_docker.store.study_result import StudyResult
    from llem_docker.study.model import StudyConfig
    from llem_harness.host_api import ExperimentResult

_LAZY = {
    "run_experiment": "llem_docker.api",
    "run_study": "llem_docker.api",
    "load_results": "llem_docker.store.load",
    "StudyConfig": "llem_docker.study.model",
    "StudyResult": "llem_docker.store.study_result",
    "ExperimentResult": "llem_harness.host_api",
}

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "StudyConfig",
    "StudyResult",
    "__version__",
    "load_results",
    "run_experiment",
    "run_study",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llem_docker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
