"""The engine registry: built-in engines, engines from other distributions (entry points), and
`make lint`'s check that an engine is named only in its own package and the registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llem_harness.backends import BUILTIN, ENGINES, engine
from llem_harness.config import ExperimentConfig
from tests.conformance.engine_suite import CHECKS
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import engine_names

PLUGIN = REPO / "tests" / "plugins" / "llem-echo-engine"
ECHO_STUDY = """\
name: echo-study
model: llem/tiny-llama
weights: dummy
backend: echo
n_prompts: 8
max_input_tokens: 16
max_output_tokens: 8
warmup_runs: 1
echo: {token_id: 3}
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo engine's distribution installed into a folder of its own (a temporary
    environment on PYTHONPATH): pip, no network, no build isolation."""
    target, source = tmp_path_factory.mktemp("echo-env"), tmp_path_factory.mktemp("echo-src")
    shutil.copytree(PLUGIN, source, dirs_exist_ok=True)  # the build writes beside its sources
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "--target", str(target), str(source)], check=True, timeout=300)
    return target


def _python(env_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(env_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_builtin_engines_come_first_and_each_names_its_own_package() -> None:
    assert [t.split(":")[0].rsplit(".", 1)[1] for t in BUILTIN] == list(ENGINES)[:3]
    for name, spec in ENGINES.items():
        assert spec.name == name and spec.backend.startswith(f"llem_harness.backends.{name}.")
        assert spec.options().engine_args == {}


def test_an_unknown_backend_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backend `echo`; use one of pytorch, vllm"):
        ExperimentConfig(model="m", backend="echo")
    with pytest.raises(ValueError, match="not available"):
        engine("echo")


def test_an_installed_engine_runs_a_study_through_the_local_runner(
    plugin_env: Path, tmp_path: Path
) -> None:
    study = tmp_path / "echo.yaml"
    study.write_text(ECHO_STUDY)
    env = {"PYTHONPATH": str(plugin_env), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    env["HOME"] = str(tmp_path)
    cmd = [sys.executable, "-m", "llem_docker.cli", "run", str(study), "--runner", "local"]
    cmd += ["--profile", "quick", "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (result_file,) = (tmp_path / "results").glob("*/runs/*/result.json")
    result = json.loads(result_file.read_text())
    assert result["backend"] == "echo" and result["backend_version"] == "0.1.0"
    assert result["backend_details"] == {"token_id": 3, "engine_args": {}}
    assert result["tokens"] == {"input": 8 * 16, "output": 8 * 8}
    assert result["config"]["echo"]["token_id"] == 3


def test_the_host_learns_the_engine_from_the_registry_alone(plugin_env: Path) -> None:
    code = (
        "from llem_harness.host_api import BACKENDS, ExperimentConfig, engine\n"
        "c = ExperimentConfig(model='m', backend='echo', echo={'token_id': 1})\n"
        "print(BACKENDS, engine('echo').concurrency(c), c.config_hash()[:8])\n"
        "ExperimentConfig(model='m', backend='echo', echo={'engine_args': {'max_tokens': 1}})\n"
    )
    done = _python(plugin_env, code)
    assert "('pytorch', 'vllm', 'tensorrt', 'echo') 1" in done.stdout, done.stderr
    # its reserved keys, from its spec
    assert "echo.engine_args.max_tokens is set by the harness; set max_output_tokens" in done.stderr


def test_an_engine_installed_beside_leaves_the_built_in_hashes_as_they_were(
    plugin_env: Path,
) -> None:
    code = "from llem_harness.config import ExperimentConfig as E\n"
    code += "print(E(model='m', backend='vllm').config_hash())"
    with_plugin = _python(plugin_env, code).stdout
    assert with_plugin.strip() == ExperimentConfig(model="m", backend="vllm").config_hash()


def test_a_broken_entry_point_names_itself(plugin_env: Path, tmp_path: Path) -> None:
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[llem_harness.engines]\nbad = llem_echo_engine:EchoOptions\n"
    )
    done = _python(Path(f"{plugin_env}:{tmp_path}"), "import llem_harness.config")
    assert done.returncode != 0
    assert "entry point `bad = llem_echo_engine:EchoOptions`" in done.stderr
    assert "gives ModelMetaclass, not an EngineSpec" in done.stderr


def test_the_name_check_passes_on_the_tree_and_fails_on_a_planted_name(tmp_path: Path) -> None:
    assert engine_names.main([]) == 0
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""A docstring may say vLLM."""\n'
        "# so may a comment: pytorch\n"
        'x = {"backend": "vllm"}\n'
        "def run_tensorrt() -> None: ...\n"
        'y = "a tensorrt_llm string"  # not an engine\n'
    )
    found = sorted(engine_names.violations(planted, sorted(ENGINES)))
    assert [line.rsplit(":", 2)[1:] for line in found] == [["3", " vllm"], ["4", " tensorrt"]]


def test_an_installed_engine_passes_the_conformance_suite(plugin_env: Path) -> None:
    env = {"PYTHONPATH": f"{plugin_env}:{REPO}", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "tests.conformance.engine_suite", "echo", '{"token_id": 2}']
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok echo:") == len(CHECKS)
