"""Neither distribution pulls an inference engine in at import time."""

from __future__ import annotations

import subprocess
import sys


def test_no_engine_imported() -> None:
    code = (
        "import sys, llem_docker, llem_docker.cli.app, llem_harness, llem_harness.cli\n"
        "bad = [m for m in ('torch', 'vllm', 'tensorrt_llm', 'transformers') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_harness_console_script() -> None:
    from pathlib import Path

    exe = Path(sys.executable).with_name("llem-harness")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "llem-harness 0.1.0"
