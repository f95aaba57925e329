"""llem-docker: the host-side orchestrator. Never imports torch, vLLM or TensorRT-LLM."""

from llem_docker.expand import StudyPlan, plan_study
from llem_docker.loader import load_study
from llem_docker.study import ExecutionConfig, StudyConfig
from llem_harness import ExperimentConfig, __version__

__all__ = [
    "ExecutionConfig",
    "ExperimentConfig",
    "StudyConfig",
    "StudyPlan",
    "__version__",
    "load_study",
    "plan_study",
]
