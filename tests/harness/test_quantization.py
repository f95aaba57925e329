"""`quantization:`: the support table, the dry run's refusals (host GPUs from a stand-in
nvidia-smi), and real online quantization of the tiny model on the CPU (torchao and
bitsandbytes). The same methods run in a container in tests/docker/test_quantization.py;
fp8 needs a GPU (bench/README.md has the H200's figures)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_docker.execution.gpu_check import host_gpus
from llem_harness.backends import ENGINES
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ErrorInfo, ExperimentResult
from llem_harness.quantization import (
    QUANTIZATIONS,
    CheckpointMismatch,
    checkpoint_method,
    config_problem,
    gpu_problem,
    verify_checkpoint,
)
from llem_harness.run import run_experiment
from tests.harness.test_harness_run import write_request
from tests.orchestrator.cliutil import invoke

BACKENDS = ("pytorch", "vllm", "tensorrt")


def test_every_combination_runs_or_is_refused_naming_what_is_supported() -> None:
    for backend in BACKENDS:
        for method in QUANTIZATIONS:
            for weights in ("dummy", "pretrained"):
                problem = config_problem(backend, method, weights)
                support = ENGINES[backend].quantization.get(method)
                runs = method == "none" or (support is not None and weights in support.weights)
                assert (problem is None) == runs, (backend, method, weights)
                if problem is not None:
                    assert f"quantization: {method}" in problem and backend in problem
    gptq = config_problem("pytorch", "gptq", "pretrained")
    assert (
        gptq is not None
        and "backends that run gptq: vllm, tensorrt" in gptq
        and "bnb-nf4 (dummy/pretrained)" in gptq
    )
    awq = config_problem("vllm", "awq", "dummy")
    assert awq is not None and "needs weights: pretrained" in awq and "online method: fp8" in awq
    trt = config_problem("tensorrt", "fp8", "dummy")
    assert trt is not None and "tensorrt has no online method" in trt


def test_the_gpu_decides_what_remains() -> None:
    assert gpu_problem("pytorch", "int8", []) is None  # torchao int8 runs on the CPU
    no_gpu = gpu_problem("vllm", "fp8", [])
    assert no_gpu is not None and "needs a GPU of compute capability 8.9" in no_gpu
    old = gpu_problem("pytorch", "fp8", [("NVIDIA H200", 9.0), ("NVIDIA A100", 8.0)])
    assert old is not None and "NVIDIA A100 (8) is below it" in old
    assert gpu_problem("pytorch", "fp8", [("NVIDIA L4", 8.9)]) is None
    assert gpu_problem("vllm", "none", []) is None


def test_the_grammar_refuses_and_old_hashes_hold() -> None:
    with pytest.raises(ValidationError, match="needs weights: pretrained"):
        ExperimentConfig(model="m", backend="vllm", weights="dummy", quantization="gptq")
    with pytest.raises(ValidationError, match="set quantization instead"):
        ExperimentConfig(model="m", backend="vllm", vllm={"engine_args": {"quantization": "fp8"}})
    with pytest.raises(ValidationError, match="set quantization instead"):
        ExperimentConfig(
            model="m", backend="pytorch", pytorch={"engine_args": {"quantization_config": {}}}
        )
    with pytest.raises(ValidationError):
        ExperimentConfig(model="m", backend="vllm", quantization="int4")
    plain = ExperimentConfig(model="m", backend="vllm")
    explicit = ExperimentConfig(model="m", backend="vllm", quantization="none")
    assert "quantization" not in plain.canonical()
    assert plain.config_hash() == explicit.config_hash()
    fp8 = ExperimentConfig(model="m", backend="vllm", quantization="fp8")
    assert fp8.canonical()["quantization"] == "fp8" and fp8.config_hash() != plain.config_hash()


def fake_smi(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "nvidia-smi"
    lines = " ".join(f"'{row}'" for row in rows.splitlines())
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' {lines}\n")  # a builtin: PATH may be bare
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_host_gpus_come_from_nvidia_smi_and_the_selection(tmp_path: Path) -> None:
    rows = ["0, GPU-aaa, NVIDIA H200, 9.0", "1, GPU-bbb, NVIDIA A100-SXM4-80GB, 8.0"]
    smi = fake_smi(tmp_path, "\n".join(rows))
    assert host_gpus(None, smi) == [("NVIDIA H200", 9.0), ("NVIDIA A100-SXM4-80GB", 8.0)]
    assert host_gpus(["1"], smi) == [("NVIDIA A100-SXM4-80GB", 8.0)]
    assert host_gpus(["gpu-aaa"], smi) == [("NVIDIA H200", 9.0)]
    assert host_gpus([], smi) == []
    assert host_gpus(None, str(tmp_path / "missing")) is None  # named but does not run


def study(tmp_path: Path, backend: str, method: str) -> Path:
    path = tmp_path / f"{backend}-{method}.yaml"
    path.write_text(
        f"name: q\nmodel: llem/tiny-llama\nweights: dummy\nbackend: {backend}\n"
        f"sweep:\n  quantization: [none, {method}]\n"
    )
    return path


def test_the_dry_run_refuses_a_method_this_host_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: a host without GPUs
    refused = invoke(capsys, monkeypatch, "run", str(study(tmp_path, "vllm", "fp8")), "--dry-run")
    assert refused.code == 2, refused.err
    text = " ".join(refused.err.split())
    assert "quantization: fp8 on backend vllm needs a GPU" in text
    assert "vllm-fp8.yaml: `sweep.quantization`" in text and "the point quantization=fp8" in text
    fake_smi(tmp_path, "0, GPU-aaa, NVIDIA A100-SXM4-80GB, 8.0")
    low = invoke(capsys, monkeypatch, "run", str(study(tmp_path, "pytorch", "fp8")), "--dry-run")
    assert low.code == 2 and "NVIDIA A100-SXM4-80GB (8) is below it" in " ".join(low.err.split())
    fine = invoke(capsys, monkeypatch, "run", str(study(tmp_path, "pytorch", "int8")), "--dry-run")
    assert fine.code == 0, fine.err
    assert "quantization" in fine.out  # the swept axis is a column of the plan


@pytest.mark.parametrize(
    ("method", "fmt"),
    [("int8", "Int8Tensor"), ("bnb-nf4", "Params4bit"), ("bnb-int8", "Int8Params")],
)
def test_online_quantization_of_the_tiny_model_on_the_cpu(
    tmp_path: Path, method: str, fmt: str
) -> None:
    write_request(tmp_path, quantization=method, precision="bf16")
    assert run_experiment(tmp_path) == 0, (tmp_path / "error.json").read_text()
    res = ExperimentResult.model_validate_json((tmp_path / "result.json").read_text())
    q = res.backend_details["quantization"]
    assert q["method"] == method and q["weight_format"].startswith(fmt)
    assert q["layers_quantized"] == 2 * 7  # tiny-llama: 2 layers x (4 attention + 3 MLP)
    assert q["kept"] == ["lm_head"]
    assert res.tokens.output == 4 * 8 and res.config.quantization == method
    assert res.backend_details["load_breakdown"]["quantize_s"] >= 0


def test_the_harness_refuses_fp8_without_a_gpu_in_the_config_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "llem_harness.energy.nvml_device.run_gpus", lambda n: []
    )  # as on a CPU host
    write_request(tmp_path, quantization="fp8", precision="bf16")
    assert run_experiment(tmp_path) == 2
    err = ErrorInfo.model_validate_json((tmp_path / "error.json").read_text())
    assert err.phase == "config" and "needs a GPU of compute capability 8.9" in err.message


@pytest.mark.parametrize(("method", "package"), [("int8", "torchao"), ("bnb-nf4", "bitsandbytes")])
def test_a_missing_quantization_package_is_a_config_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, package: str
) -> None:
    # A local-runner Python without the extra: the run stops before the model loads, not
    # with a bare ModuleNotFoundError in the load phase (as one did on a fresh H200).
    monkeypatch.setitem(sys.modules, package, None)  # import machinery: "not installed"
    write_request(tmp_path, quantization=method, precision="bf16")
    assert run_experiment(tmp_path) == 2
    err = ErrorInfo.model_validate_json((tmp_path / "error.json").read_text())
    assert err.phase == "config", err.message
    assert f"`{package}`" in err.message and "llem-harness[quantization]" in err.message


def test_the_docs_table_is_the_code_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "quantization.md").read_text()
    rows = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] in BACKENDS:
            backend, method, _, weights, cc, cpu = cells
            rows.add((backend, method, weights, None if cc == "any" else float(cc), cpu == "yes"))
    code = {
        (b, m, ", ".join(s.weights), s.min_cc, s.cpu)
        for b, spec in ENGINES.items()
        for m, s in spec.quantization.items()
    }
    assert rows == code


def test_the_vllm_server_gets_the_method() -> None:
    from llem_harness.backends.vllm.server import VLLMServer

    def vllm_command(cfg: ExperimentConfig, model: str, port: int) -> list[str]:
        return VLLMServer().command(cfg, model, port, Path("/unused"))[0]

    cfg = ExperimentConfig(
        model="llem/tiny-llama", backend="vllm", weights="dummy", scenario="serving",
        quantization="fp8",
    )  # fmt: skip
    cmd = vllm_command(cfg, "/m", 8000)
    assert cmd[cmd.index("--quantization") + 1] == "fp8"
    plain = vllm_command(cfg.model_copy(update={"quantization": "none"}), "/m", 8000)
    assert "--quantization" not in plain


def test_unknown_capabilities_leave_the_check_to_the_harness(tmp_path: Path) -> None:
    assert host_gpus(None, fake_smi(tmp_path, "0, GPU-aaa, Old GPU, [N/A]")) is None
    failing = tmp_path / "failing-smi"
    failing.write_text("#!/bin/sh\nexit 9\n")
    failing.chmod(0o755)
    assert host_gpus(None, str(failing)) is None


def test_a_run_is_checked_on_the_gpus_it_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_smi(tmp_path, "0, GPU-aaa, NVIDIA H100, 9.0\n1, GPU-bbb, Tesla T4, 7.5")
    one = invoke(capsys, monkeypatch, "run", str(study(tmp_path, "pytorch", "fp8")), "--dry-run")
    assert one.code == 0, one.err  # one GPU a run: GPU 0
    two = study(tmp_path, "vllm", "fp8")
    two.write_text(two.read_text() + "vllm: {tensor_parallel_size: 2}\n")
    refused = invoke(capsys, monkeypatch, "run", str(two), "--dry-run")
    text = " ".join(refused.err.split())
    assert refused.code == 2 and "Tesla T4 (7.5) is below it" in text
    assert "`sweep.quantization`" in text and "(--gpus, docker.gpus)" in text
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # the local runner passes it on
    local = invoke(
        capsys, monkeypatch, "run", str(study(tmp_path, "pytorch", "fp8")), "--dry-run",
        "--runner", "local",
    )  # fmt: skip
    assert local.code == 2 and "CUDA_VISIBLE_DEVICES" in " ".join(local.err.split())


def test_the_library_api_checks_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llem_docker import run_study
    from llem_docker.errors import ConfigError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="needs a GPU"):
        run_study(study(tmp_path, "vllm", "fp8"), runner="docker", results_dir=tmp_path)


def test_bitsandbytes_is_not_compiled() -> None:
    with pytest.raises(ValidationError, match="set torch_compile: false"):
        ExperimentConfig(
            model="m", backend="pytorch", quantization="bnb-nf4", pytorch={"torch_compile": True}
        )


def test_a_checkpoint_must_hold_the_method_named() -> None:
    assert checkpoint_method(None, None) == "none"
    assert checkpoint_method({"quant_method": "awq", "bits": 4}, None) == "awq"
    assert checkpoint_method({"quant_method": "modelopt", "quant_algo": "FP8"}, None) == "fp8"
    assert checkpoint_method(None, {"quantization": {"quant_algo": "W4A16_AWQ"}}) == "awq"
    assert checkpoint_method({"quant_method": "compressed-tensors"}, None) == "compressed-tensors"
    verify_checkpoint("m", "awq", "awq")
    with pytest.raises(CheckpointMismatch, match="holds no quantized weights"):
        verify_checkpoint("m", "fp8", "none")
    with pytest.raises(CheckpointMismatch, match="set quantization: fp8"):
        verify_checkpoint("m", "none", "fp8")


def test_tensorrt_reads_the_checkpoints_method(tmp_path: Path) -> None:
    """The TensorRT-LLM backend's check, on a real checkpoint folder read by transformers."""
    import json

    from llem_harness.backends.tensorrt.backend import TensorRTBackend
    from llem_harness.models import dummy_model_dir

    folder, _ = dummy_model_dir("llem/tiny-llama", tmp_path / "ckpt")
    (folder / "hf_quant_config.json").write_text(
        json.dumps({"quantization": {"quant_algo": "FP8"}})
    )
    cfg = ExperimentConfig(model=str(folder), backend="tensorrt", quantization="fp8")
    assert TensorRTBackend._checkpoint_quantization(cfg) == {"method": "fp8", "checkpoint": "fp8"}
    with pytest.raises(CheckpointMismatch, match="holds fp8 weights; set quantization: fp8"):
        TensorRTBackend._checkpoint_quantization(cfg.model_copy(update={"quantization": "none"}))
