"""llem-docker: the host-side orchestrator. Never imports torch, vLLM or TensorRT-LLM.

The public API is what this module exports; everything else is internal.
"""

from llem_docker.api import run_experiment, run_study
from llem_docker.results import load_results
from llem_docker.study import StudyConfig
from llem_docker.study_result import StudyResult
from llem_harness import ExperimentConfig, __version__
from llem_harness.contract import ExperimentResult

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
