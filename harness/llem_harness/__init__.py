"""llem-harness: the measurement harness carried by every llem-docker backend image.

Importing this package never imports torch, vLLM or TensorRT-LLM; a backend module is
imported only when that backend runs.
"""

from llem_harness.backends import BACKENDS
from llem_harness.config import ExperimentConfig

__version__ = "0.1.0"

__all__ = ["BACKENDS", "ExperimentConfig", "__version__"]
