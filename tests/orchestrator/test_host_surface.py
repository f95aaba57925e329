"""The host's view of the harness: llem_harness.host_api, and nothing heavy behind it.

`make lint` runs the import contracts (pyproject.toml, [tool.importlinter]); these tests keep
the contract's list of forbidden harness modules whole, and check what importing the surface
loads."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib

import llem_harness
from tests.conftest import REPO


def test_every_harness_module_but_the_surface_is_forbidden_to_the_host() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if "host_api" in c["name"]]
    assert contract["source_modules"] == ["llem_docker"]
    modules = {
        f"llem_harness.{m.name}"
        for m in pkgutil.iter_modules(llem_harness.__path__)
        if m.name != "host_api"
    }
    assert set(contract["forbidden_modules"]) == modules


def test_the_surface_loads_no_engine_and_no_nvml() -> None:
    code = (
        "import sys, llem_harness.host_api\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'tensorrt_llm', 'pynvml')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
