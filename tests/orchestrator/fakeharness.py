"""A stand-in for `llem-harness run RUN_DIR`: a real Python subprocess that speaks the exchange
contract (JSON progress lines, result.json / error.json) and misbehaves on request.

The mode comes from `--mode M` on the command line, else from the last part of the model
name in experiment.json (`fake/ok`, `fake/error`, ...):

  ok*          result.json without energy (null + reason), like a machine without NVML
  energy*      result.json with 100 J of energy
  error        error.json (phase load), exit 1
  crash        prints to stdout and stderr, exit 3, writes nothing
  malformed    result.json that is not JSON
  wrongrun     a valid result.json for another run id
  hang         spawns a grandchild `sleep`, writes its pid to grandchild.pid, sleeps
  stubborn     like hang, and ignores SIGTERM
  orphan       spawns a background grandchild holding stdout, exits 0 at once
  env          emits its HF_HOME / PYTHONUNBUFFERED and exits 0
"""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPT = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

args = sys.argv[1:]
mode = None
if "--mode" in args:
    i = args.index("--mode")
    mode = args[i + 1]
    del args[i:i + 2]
run_dir = Path(args[-1])
req = None
if (run_dir / "experiment.json").exists():
    req = json.loads((run_dir / "experiment.json").read_text())
    mode = mode or req["config"]["model"].rsplit("/", 1)[-1]

def emit(event, **fields):
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)

emit("phase", phase="config")
manifest = run_dir.parent.parent / "manifest.json"
if manifest.exists():  # what a reader sees mid-run: a whole file, this run marked running
    m = json.loads(manifest.read_text())
    mine = [r["state"] for r in m["runs"] if r["run_id"] == run_dir.name]
    (run_dir / "seen_manifest.json").write_text(json.dumps({"study": m["state"], "run": mine}))
print("plain log line from the fake harness", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
emit("phase", phase="load", model="fake")

if mode == "env":
    emit("env", HF_HOME=os.environ.get("HF_HOME"), unbuffered=os.environ.get("PYTHONUNBUFFERED"))
    sys.exit(0)
if mode in ("hang", "stubborn", "orphan"):
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "1000"])
    (run_dir / "grandchild.pid").write_text(str(child.pid))
    emit("phase", phase="measure")
    if mode == "orphan":
        sys.exit(0)
    while True:
        time.sleep(1)
if mode == "crash":
    print("Segmentation fault (pretend)", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "malformed":
    (run_dir / "result.json").write_text("{not json")
    sys.exit(0)

from llem_harness.contract import (CO2, Energy, ErrorInfo, ExperimentResult, Latency, Memory,
    MeasurementSettings, RunIdentity, RunnerInfo, Stats, Tokens, Warmup, atomic_write_json)
from llem_harness.config import ExperimentConfig

if mode == "error":
    info = ErrorInfo(type="ModelNotFoundError", message="model fake/error is not shipped",
                     traceback="Traceback (most recent call last): ...", phase="load")
    atomic_write_json(run_dir / "error.json", info.model_dump(mode="json"))
    emit("error", type=info.type, message=info.message, phase=info.phase)
    sys.exit(1)

if req is not None:
    cfg = ExperimentConfig.model_validate(req["config"])
    run = RunIdentity.model_validate(req["run"])
    ms = MeasurementSettings.model_validate(req["measurement"])
else:
    cfg = ExperimentConfig(model="fake/ok", backend="pytorch")
    run = RunIdentity(study_name="s", study_id="s_1", design_hash="d", run_id=run_dir.name,
                      index=1, cycle=1, config_hash=cfg.config_hash())
    ms = MeasurementSettings()
if mode == "wrongrun":
    run = run.model_copy(update={"run_id": "999_c9_pytorch_deadbeef"})
emit("phase", phase="warmup")
emit("warmup", run=1, tokens_per_s=120.0)
emit("phase", phase="measure", prompts=4)
energy_j = 100.0 if mode.startswith("energy") else None
reason = None if energy_j is not None else "NVML unavailable: fake harness"
st = Stats(mean=12.0, p50=11.0, p90=15.0, p99=19.0, n=4)
result = ExperimentResult(
    experiment_id=run.run_id, run=run, config=cfg, config_hash=cfg.config_hash(),
    backend=cfg.backend, backend_version="0.0-fake", model=cfg.model,
    runner=RunnerInfo(type="local"), started_at="2026-01-01T00:00:00.000+00:00",
    ended_at="2026-01-01T00:00:02.000+00:00", tokens=Tokens(input=512, output=256),
    duration_s=2.0, throughput_tokens_per_s=128.0,
    energy=Energy(total_j=energy_j, adjusted_j=None, baseline_power_w=None,
                  method="nvml_counter" if energy_j else None, unavailable_reason=reason),
    energy_per_output_token_j=None if energy_j is None else energy_j / 256,
    latency=Latency(ttft_ms=st, itl_ms=st, request_ms=st, mode="streamer_per_batch"),
    memory=Memory(peak_mb=None, unavailable_reason="no CUDA"),
    co2=CO2(kg=None, unavailable_reason=reason),
    warmup=Warmup(runs=1, converged=False, final_cv=None, threshold=0.05, throughputs=[120.0]),
    measurement=ms, warnings=["short measurement window: 2.00 s < 10 s"],
)
emit("phase", phase="write")
atomic_write_json(run_dir / "result.json", result.model_dump(mode="json"))
emit("done", throughput_tokens_per_s=128.0, energy_j=energy_j)
"""


def install(directory: Path) -> list[str]:
    """Write the fake harness into `directory`; return the command prefix (run dir appended)."""
    path = directory / "fake_harness.py"
    path.write_text(SCRIPT)
    return [sys.executable, str(path)]
