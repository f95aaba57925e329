"""The harness end to end on the CPU: a real tiny model, the exchange contract, error.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from llem_harness.caches import CACHE_DIRS
from llem_harness.contract import (
    SCHEMA_VERSION,
    ErrorInfo,
    ExperimentResult,
    MeasurementSettings,
    RunRequest,
    standalone_request,
)
from llem_harness.run import run_experiment
from llem_harness.summary import stats

TINY = {
    "model": "llem/tiny-llama",
    "backend": "pytorch",
    "weights": "dummy",
    "precision": "fp32",
    "n_prompts": 4,
    "batch_size": 2,
    "max_input_tokens": 16,
    "max_output_tokens": 8,
    "warmup_runs": 1,
    "warmup_max_runs": 3,
}


def write_request(run_dir: Path, **overrides: Any) -> RunRequest:
    from llem_harness.config import ExperimentConfig

    cfg = ExperimentConfig.model_validate({**TINY, **overrides})
    req = standalone_request(
        cfg, run_id="001_c1_x", measurement=MeasurementSettings(baseline_seconds=0.0)
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "experiment.json").write_text(req.model_dump_json())
    return req


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_real_cpu_run_of_the_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_request(tmp_path)
    assert run_experiment(tmp_path) == 0
    phases = [e["phase"] for e in events(capsys.readouterr().out) if e["event"] == "phase"]
    assert phases == ["config", "baseline", "load", "warmup", "measure", "write"]
    assert not (tmp_path / "error.json").exists()
    res = ExperimentResult.model_validate_json((tmp_path / "result.json").read_text())
    assert res.tokens.output == 4 * 8
    assert res.tokens.input == sum(min(16, n) for n in [16] * 4)
    assert res.throughput_tokens_per_s > 0 and res.duration_s > 0
    # No NVML here: energy is null with a reason, never 0.
    assert res.energy.total_j is None and res.energy.unavailable_reason
    assert res.energy_per_output_token_j is None and res.co2.kg is None
    assert res.memory.peak_mb is None and res.memory.unavailable_reason
    assert res.latency.mode == "streamer_per_batch"
    assert res.latency.ttft_ms is not None and res.latency.ttft_ms.n == 4
    assert res.latency.itl_ms is not None and res.latency.itl_ms.n == 4 * 7
    assert res.warmup.runs >= 1 and res.warmup.threshold == 0.05
    assert res.backend_details["cache_implementation"] == "static"
    em = res.engine_metrics  # a static batch: its load is its configuration (2 batches of 2)
    assert em is not None and em.source == "the static batch as configured"
    assert (em.concurrency_limit, em.mean_running, em.file) == (2, 2.0, None)
    assert res.energy.baseline_cuda_context is None  # no GPU: not known
    assert res.validity is not None and {r.rule for r in res.validity.rules} >= {
        "batch_reached", "baseline_context"
    }  # fmt: skip
    env = res.environment
    assert env.python and env.backend_version and env.harness_version
    # no GPU here: the count is 0 (not unknown), and the environment says why
    assert env.gpus == [] and env.gpu_count == 0 and env.gpu_unavailable_reason
    assert any("short measurement window" in w for w in res.warnings)
    # Per-phase timing; in-process (pytest), the process's start is not this run's.
    t = res.timing
    assert t is not None and t.startup_s is None and t.startup_unavailable_reason
    for phase in ("config_s", "baseline_s", "imports_s", "load_s", "warmup_s", "measure_s"):
        assert (getattr(t, phase) or -1) >= 0, phase
    assert t.measure_s is not None and t.measure_s >= res.duration_s
    assert t.harness_s is not None and t.harness_s >= t.load_s + t.measure_s  # type: ignore[operator]
    assert t.overlapped_s is not None and 0 <= t.overlapped_s <= t.imports_s + 0.01  # type: ignore[operator]
    assert res.requests is None  # only with window: steady_state and per-request times
    # CPU and DRAM energy: RAPL's figures, or null with the reason (this machine's kind).
    e = res.energy
    assert (e.cpu_j is None) == (e.cpu_unavailable_reason is not None)
    assert (e.dram_j is None) == (e.dram_unavailable_reason is not None)
    # Phases: a prefill-only pass over the same prompts; decode is the rest (CPU: no energy).
    ph = res.phases
    assert ph is not None and ph.prefill.tokens == res.tokens.input
    assert ph.decode.tokens == res.tokens.output - 4  # the first token of each is the prefill's
    assert ph.prefill.duration_s is not None and ph.prefill.duration_s > 0
    assert ph.decode.duration_s is not None and ph.decode.duration_s > 0
    assert ph.prefill.energy_j is None and ph.prefill.unavailable_reason
    assert ph.prefill.passes == 1  # nothing to measure: no repeats to fill a window
    assert ph.decode.energy_j is None and ph.decode.unavailable_reason
    # FLOPs are counted on the CPU too; MFU needs a GPU's peak, energy per TFLOP an energy.
    f = res.flops
    assert f is not None and f.prefill and f.decode and f.total == f.prefill + f.decode
    assert f.achieved_tflops is not None and f.achieved_tflops > 0
    assert f.mfu is None and f.energy_per_tflop_j is None and f.unavailable_reason
    table = pq.read_table(tmp_path / "timeseries.parquet")
    assert table.column_names == [
        "t_s",
        "gpu_index",
        "power_w",
        "energy_mj",
        "temperature_c",
        "memory_used_mb",
        "sm_util_pct",
        "throttle_reasons",
    ]


def test_a_growing_policy_measures_whole_passes_until_the_window_is_long_enough(
    tmp_path: Path,
) -> None:
    """What the publication profile does with its 60 s, at a CPU-sized minimum."""
    from llem_harness.contract_validity import ValidityPolicy

    first = tmp_path / "plain"
    write_request(first)
    assert run_experiment(first) == 0
    plain = ExperimentResult.model_validate_json((first / "result.json").read_text())
    least = 10 * plain.duration_s  # about ten passes' worth: more than noise can cover
    req = write_request(tmp_path)
    policy = ValidityPolicy(profile="test", min_window_s=least, grow_window=True)
    req.validity = policy
    (tmp_path / "experiment.json").write_text(req.model_dump_json())
    assert run_experiment(tmp_path) == 0
    res = ExperimentResult.model_validate_json((tmp_path / "result.json").read_text())
    k = res.window_repeats
    assert res.duration_s >= least  # the window reached its minimum...
    assert k >= 2 and res.tokens.output == 4 * 8 * k, (plain.duration_s, least, res.duration_s)
    # ...by whole passes, stopping once it is reached: past it by less than two of its own
    # passes (its own, not the first run's: a shared machine's speed drifts between runs)
    assert res.duration_s - least < 2 * res.duration_s / k
    assert len(res.warmup.pass_seconds) == res.warmup.runs
    assert any(f"{k} passes over the 4 prompts" in w for w in res.warnings)
    assert res.validity is not None and res.validity.policy == policy
    assert plain.window_repeats == 1 and plain.validity and plain.validity.policy
    assert plain.validity.policy.profile == "standard"


def test_dynamic_cache_is_recorded(tmp_path: Path) -> None:
    write_request(tmp_path, pytorch={"cache_implementation": "dynamic"}, warmup_max_runs=1)
    assert run_experiment(tmp_path) == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["backend_details"]["cache_implementation"] == "dynamic"
    assert res["tokens"]["output"] == 32


def harness_subprocess(
    run_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem_harness", "run", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def read_error(run_dir: Path) -> ErrorInfo:
    assert not (run_dir / "result.json").exists()
    return ErrorInfo.model_validate_json((run_dir / "error.json").read_text())


@pytest.mark.parametrize("body", ["{not json", '{"config": {"model": "m"}}', ""])
def test_malformed_experiment_json(tmp_path: Path, body: str) -> None:
    (tmp_path / "experiment.json").write_text(body)
    proc = harness_subprocess(tmp_path)
    assert proc.returncode == 2
    err = read_error(tmp_path)
    assert err.phase == "config" and "malformed experiment.json" in err.message
    assert "Traceback" in err.traceback


def test_missing_experiment_json(tmp_path: Path) -> None:
    assert harness_subprocess(tmp_path).returncode == 2
    assert read_error(tmp_path).phase == "config"


def test_missing_model_dummy(tmp_path: Path) -> None:
    write_request(tmp_path, model="nobody/no-such-model")
    assert run_experiment(tmp_path) == 1
    err = read_error(tmp_path)
    assert (err.phase, err.type) == ("load", "ModelNotFoundError")
    assert "not shipped" in err.message


def test_missing_model_pretrained_offline(tmp_path: Path) -> None:
    write_request(tmp_path, model="nobody/no-such-model", weights="pretrained")
    proc = harness_subprocess(tmp_path, {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 1
    err = read_error(tmp_path)
    assert (err.phase, err.type) == ("load", "ModelNotFoundError")
    assert "weights: dummy" in err.message


def test_exception_mid_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llem_harness.backends.pytorch.backend import PyTorchBackend

    real = PyTorchBackend.generate

    def failing(self: PyTorchBackend, prompts: list[list[int]], *, timed: bool) -> Any:
        if timed:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(self, prompts, timed=timed)

    monkeypatch.setattr(PyTorchBackend, "generate", failing)
    write_request(tmp_path)
    assert run_experiment(tmp_path) == 1
    err = read_error(tmp_path)
    assert (err.phase, err.type) == ("measure", "RuntimeError")
    assert "illegal memory access" in err.message


def test_sigterm_leaves_error_json(tmp_path: Path) -> None:
    write_request(tmp_path, n_prompts=4000, max_output_tokens=64, warmup_max_runs=0, warmup_runs=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llem_harness", "run", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"measure"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert read_error(tmp_path).type == "Terminated"


def test_sigterm_swallowed_by_a_finalizer_still_ends_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python runs the SIGTERM handler in whatever code is current; inside a `__del__` (seen
    with a tokenizer's regex objects) its exception is printed and dropped. The run must still
    end as Terminated and never write a result.json."""
    from llem_harness.backends.pytorch.backend import PyTorchBackend

    real = PyTorchBackend.generate

    class SignalsOnDelete:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)

    def signalled(self: PyTorchBackend, prompts: list[list[int]], *, timed: bool) -> Any:
        if timed:
            SignalsOnDelete()  # dropped at once: the handler's raise lands in __del__
        return real(self, prompts, timed=timed)

    swallowed: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: swallowed.append(u.exc_value))
    monkeypatch.setattr(PyTorchBackend, "generate", signalled)
    write_request(tmp_path)
    assert run_experiment(tmp_path) == 143
    assert [type(e).__name__ for e in swallowed] == ["Terminated"]  # the raise really was lost
    assert not (tmp_path / "result.json").exists()
    err = read_error(tmp_path)
    assert (err.type, err.phase) == ("Terminated", "measure")


def test_killed_writer_leaves_no_partial_result(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    child = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from llem_harness import contract, contract_files
        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(60)
        contract_files.os.fsync = slow_fsync  # where atomic_write_json lives
        contract.atomic_write_json(Path({str(target)!r}), {{"big": "x" * 5_000_000}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    assert not target.exists()  # the half-written data only ever lived in a temp file


def test_stats_percentiles() -> None:
    s = stats([float(i) for i in range(1, 101)])
    assert s is not None and (s.mean, s.p50, s.n) == (50.5, 50.5, 100)
    assert s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    assert stats([]) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"co2_backend": "codecarbon"}, "country_iso_code"),
        ({"co2_backend": "codecarbon", "country_iso_code": "FRA"}, "pip install"),
    ],
)
def test_codecarbon_problems_fail_in_config_phase(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    import importlib.util

    from llem_harness.config import ExperimentConfig

    if message == "pip install" and importlib.util.find_spec("codecarbon"):
        pytest.skip("codecarbon is installed here")
    req = standalone_request(
        ExperimentConfig.model_validate(TINY), measurement=MeasurementSettings(**settings)
    )
    (tmp_path / "experiment.json").write_text(req.model_dump_json())
    assert run_experiment(tmp_path) == 2
    err = read_error(tmp_path)
    assert err.phase == "config" and message in err.message


def test_pretrained_weights_load_from_a_local_model(tmp_path: Path) -> None:
    """`weights: pretrained` through from_pretrained, with a model and tokenizer saved here."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    from llem_harness.models import shipped_config

    data = dict(shipped_config("llem/tiny-llama") or {})
    config = transformers.AutoConfig.for_model(data.pop("model_type"), **data)
    model_dir = tmp_path / "my-model"
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate("abcdefghij")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>"
    )
    fast.save_pretrained(model_dir)
    run_dir = tmp_path / "run"
    write_request(run_dir, model=str(model_dir), weights="pretrained")
    assert run_experiment(run_dir) == 0, (run_dir / "error.json").read_text()
    res = json.loads((run_dir / "result.json").read_text())
    assert res["tokens"]["output"] == 32 and res["config"]["weights"] == "pretrained"


def test_a_fresh_process_times_its_startup_and_uses_the_engine_cache(tmp_path: Path) -> None:
    """As the runners start it: `python -m llem_harness.cli run`, with $LLEM_ENGINE_CACHE."""
    run_dir, cache = tmp_path / "run", tmp_path / "engines"
    write_request(run_dir, warmup_max_runs=1, warmup_runs=1, n_prompts=2)
    # torch, imported by earlier in-process tests, may have set its cache variables here
    inherited = {k: v for k, v in os.environ.items() if k not in CACHE_DIRS}
    proc = subprocess.run(
        [sys.executable, "-m", "llem_harness.cli", "run", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
        env={**inherited, "LLEM_ENGINE_CACHE": str(cache), "TRITON_CACHE_DIR": "/x/mine"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
    assert res.schema_version == SCHEMA_VERSION
    assert res.timing is not None and res.timing.startup_s is not None
    assert 0 < res.timing.startup_s < 120 and res.timing.startup_unavailable_reason is None
    caches = res.environment.compile_caches
    assert caches is not None and caches.root == str(cache)
    inductor = caches.vars["TORCHINDUCTOR_CACHE_DIR"]
    assert (inductor.value, inductor.source) == (str(cache / "inductor"), "harness")
    triton = caches.vars["TRITON_CACHE_DIR"]
    assert (triton.value, triton.source) == ("/x/mine", "user")
    assert (cache / "inductor").is_dir() and (cache / "vllm").is_dir()
    # this environment's torch and transformers carry their bytecode: no prefix is needed
    assert caches.bytecode is not None and caches.bytecode.prefix is None, caches.bytecode
