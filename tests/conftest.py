"""Shared fixtures: an isolated environment so a developer's own config never leaks in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A suite started in the background by a script (`make test &`) inherits SIGINT ignored, and so
# would every process it starts, while the tests send Ctrl+C to them (the CLI, the runners, the
# servers). An ignored signal stays ignored across exec; a handled one is reset to the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# The smallest real study: the shipped tiny Llama, random weights, a few seconds per run on a CPU.
TINY_STUDY = {
    "model": "llem/tiny-llama",
    "weights": "dummy",
    "backend": "pytorch",
    "precision": "fp32",
    "n_prompts": 4,
    "max_input_tokens": 32,
    "max_output_tokens": 16,
    "warmup_runs": 1,
    "warmup_max_runs": 2,
}


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for var in list(os.environ):
        if var.startswith("LLEM_") and var not in ("LLEM_TEST_IMAGE",):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield


REAL_MODEL = "llem/smollm2-135m-instruct"  # a packaged GGUF (llem_harness.gguf_model)


@pytest.fixture(scope="session")
def real_model_home() -> Path:
    """The HF home holding the packaged real model: the machine's own (HF_HOME, else
    ~/.cache/huggingface), where `llem-docker models fetch` puts it once; then kept."""
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    exe = Path(sys.executable).with_name("llem-docker")
    done = subprocess.run(
        [str(exe), "models", "fetch", REAL_MODEL], env={**os.environ, "HF_HOME": str(home)},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return home
