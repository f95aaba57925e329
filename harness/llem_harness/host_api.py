"""The harness's surface for the host: everything `llem_docker` may import from `llem_harness`.

The orchestrator never imports an engine, and it imports no other harness module: an
import-linter contract in `make lint` (pyproject.toml, `[tool.importlinter]`) fails when it does.
What is here is light (pydantic models, constants, small pure functions): importing it loads no
torch, vLLM, TensorRT-LLM or NVML.
"""

from llem_harness import __version__
from llem_harness.backends import BACKENDS, ENGINES, EngineSpec, engine
from llem_harness.config import SLO, ExperimentConfig, ServingOptions
from llem_harness.contract import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    LOG_FILE,
    REQUESTS_FILE,
    RESULT_FILE,
    TIMESERIES_FILE,
    ErrorInfo,
    ExperimentResult,
    MeasurementSettings,
    RunIdentity,
    RunnerInfo,
    RunRequest,
    Stats,
    atomic_write_json,
    atomic_write_text,
    schema_fingerprint,
)
from llem_harness.contract_engine import ENGINE_METRICS_FILE
from llem_harness.cpuinfo import cpu_model
from llem_harness.datasets import count_prompts, prompt_of
from llem_harness.energy.nvml_device import parse_visible_devices
from llem_harness.energy.rapl import HOST_RAPL_ENV, host_has_rapl
from llem_harness.energy.timeseries import read_timeseries
from llem_harness.gguf_model import MODELS_DIR, PACKAGED, check_file, is_gguf, packaged_path
from llem_harness.gguf_model import sha256 as file_sha256
from llem_harness.quality import references
from llem_harness.quantization import gpu_problem
from llem_harness.serving.search_options import CapacitySearch
from llem_harness.serving.trace import read_trace
from llem_harness.shipped import needs_hub
from llem_harness.termination import HOST_PID_ENV
from llem_harness.validity import POLICIES, RULES_VERSION, ValidityPolicy, evaluate

__all__ = [
    "BACKENDS",
    "ENGINES",
    "ENGINE_METRICS_FILE",
    "ERROR_FILE",
    "EXPERIMENT_FILE",
    "HOST_PID_ENV",
    "HOST_RAPL_ENV",
    "LOG_FILE",
    "MODELS_DIR",
    "PACKAGED",
    "POLICIES",
    "REQUESTS_FILE",
    "RESULT_FILE",
    "RULES_VERSION",
    "SLO",
    "TIMESERIES_FILE",
    "CapacitySearch",
    "EngineSpec",
    "ErrorInfo",
    "ExperimentConfig",
    "ExperimentResult",
    "MeasurementSettings",
    "RunIdentity",
    "RunRequest",
    "RunnerInfo",
    "ServingOptions",
    "Stats",
    "ValidityPolicy",
    "__version__",
    "atomic_write_json",
    "atomic_write_text",
    "check_file",
    "count_prompts",
    "cpu_model",
    "engine",
    "evaluate",
    "file_sha256",
    "gpu_problem",
    "host_has_rapl",
    "is_gguf",
    "needs_hub",
    "packaged_path",
    "parse_visible_devices",
    "prompt_of",
    "read_timeseries",
    "read_trace",
    "references",
    "schema_fingerprint",
]
