"""The serving path through the harness, with a stand-in for vLLM's API server
(tests/standins/vllm_server): the server's life cycle, and a whole run as the runners start
it. The real server runs in tests/docker/test_serving.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem_harness.contract import ExperimentResult
from llem_harness.serving import server
from tests.conftest import REPO
from tests.harness.test_harness_run import write_request

STANDIN = REPO / "tests" / "standins" / "vllm_server"


def standin_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(STANDIN), str(REPO / "harness"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def standin_server(tmp_path: Path, **env: str) -> server.ServerProcess:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--port"]
    port = server.free_port()
    for name in [k for k in os.environ if k.startswith("LLEM_STANDIN_")]:
        del os.environ[name]
    os.environ.update(standin_env(**env))  # the server inherits the harness's environment
    return server.ServerProcess([*cmd, str(port)], port, tmp_path / server.LOG_FILE)


@pytest.fixture(autouse=True)
def _restore_environ() -> object:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_the_server_starts_when_healthy_and_stops_with_its_group(tmp_path: Path) -> None:
    proc = standin_server(tmp_path, LLEM_STANDIN_START_S="0.5")
    took = proc.start(timeout_s=30)
    assert took >= 0.5 and proc.proc is not None
    pid = proc.proc.pid
    assert proc.stop() is not None and proc.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    assert "127.0.0.1" in (tmp_path / server.LOG_FILE).read_text()
    assert proc.stop() is None  # idempotent


def test_a_server_that_dies_or_never_answers_is_an_error_with_its_log(tmp_path: Path) -> None:
    dying = standin_server(tmp_path, LLEM_STANDIN_FAIL="1")
    with pytest.raises(RuntimeError, match="exited with code 3") as err:
        dying.start(timeout_s=30)
    assert "CUDA out of memory" in str(err.value)
    dying.stop()
    slow = standin_server(tmp_path / "x", LLEM_STANDIN_START_S="60")
    (tmp_path / "x").mkdir()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not answer /health within 1 s"):
        slow.start(timeout_s=1)
    assert time.monotonic() - t0 < 10 and slow.proc is None  # stopped on the way out


def test_the_server_dies_with_the_harness(tmp_path: Path) -> None:
    """A harness killed outright (SIGKILL: a runner's last resort) leaves no server."""
    pidfile = tmp_path / "pid"
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from llem_harness.serving import server;"
        "p = server.free_port();"
        "s = server.ServerProcess([sys.executable, '-m', 'vllm.entrypoints.openai.api_server',"
        " '--port', str(p)], p, Path(sys.argv[2]) / 'server.log'); s.start(30);"
        "Path(sys.argv[2], 'pid').write_text(str(s.proc.pid)); time.sleep(600)"
    )
    harness = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO / "harness"), str(tmp_path)], env=standin_env()
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    harness.kill()
    harness.wait()
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the server outlived its harness")


def test_a_serving_run_end_to_end_with_the_stand_in(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_request(
        run_dir, backend="vllm", scenario="serving", n_prompts=12, max_output_tokens=6,
        serving={"request_rate": 20, "arrival": "constant", "slo": {"ttft_ms": 5000}},
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "llem_harness.cli", "run", str(run_dir)],
        env=standin_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
    s = res.serving
    assert s is not None and (s.requests, s.completed, s.failed) == (12, 12, 0)
    assert s.request_rate == 20 and s.achieved_rate == pytest.approx(20, rel=0.1)
    assert res.tokens.output == 12 * 6 and res.latency.mode == "loadgen_stream"
    assert s.ttft_ms is not None and s.ttft_ms.n == 12 and s.slo_attainment == 1.0
    assert s.load_generator.cpu_s is not None and 0 < s.load_generator.cpu_s < 5
    assert s.load_generator.senders == 1  # 20 req/s
    assert s.whole.energy_j is None and s.whole.unavailable_reason  # no GPU here
    assert res.phases is not None and res.phases.prefill.unavailable_reason
    assert res.flops is not None and res.flops.total and res.steady_state is None
    table = pq.read_table(run_dir / "requests.parquet").to_pydict()
    assert table["ok"] == [1] * 12 and table["output_tokens"] == [6] * 12
    details = res.backend_details
    assert (
        details["scenario"] == "serving" and "--disable-log-stats" in details["server"]["command"]
    )
    assert "shut down" in (run_dir / "server.log").read_text()  # stopped with SIGINT, cleanly


def test_a_trace_replay_run_follows_the_trace_scaled(tmp_path: Path) -> None:
    """arrival: trace with the stand-in: the requests are due at the trace's offsets (ms,
    replayed twice as fast), capped by n_requests, each with the trace's output length
    (1..max_output_tokens)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stamps, outs = [1000, 1400, 1400, 2200, 3000, 3800], [3, 0, 9, 2, 6, 4]
    (run_dir / "trace.jsonl").write_text(
        "".join(
            json.dumps({"timestamp": t, "input_length": 10, "output_length": o}) + "\n"
            for t, o in zip(stamps, outs, strict=True)
        )
    )
    serving = {"arrival": "trace", "trace": "trace.jsonl", "trace_scale": 2.0, "trace_unit": "ms"}
    write_request(
        run_dir, backend="vllm", scenario="serving", n_prompts=4, max_output_tokens=6,
        serving={**serving, "n_requests": 5},
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "llem_harness.cli", "run", str(run_dir)],
        env=standin_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
    s = res.serving
    assert s is not None and (s.requests, s.completed, s.failed) == (5, 5, 0)
    assert (s.arrival, s.trace, s.trace_scale) == ("trace", "trace.jsonl", 2.0)
    table = pq.read_table(run_dir / "requests.parquet").to_pydict()
    due = [t - table["scheduled_s"][0] for t in table["scheduled_s"]]
    assert due == pytest.approx([0.0, 0.2, 0.2, 0.6, 1.0], abs=1e-6)
    assert table["output_tokens"] == [3, 1, 6, 2, 6]
    assert not [w for w in res.warnings if "honour" in w]


def test_a_run_whose_rate_needs_two_senders_gets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness picks the sender count from the rate (serving/senders.py; a sender is
    given 10 req/s here), and the result records it: every request once, from one schedule."""
    from llem_harness.run import run_experiment

    monkeypatch.setattr("llem_harness.serving.senders.PER_SENDER_RPS", 10.0)
    monkeypatch.setattr("llem_harness.serving.backend.usable_cores", lambda: 4)
    run_dir = tmp_path / "run"
    write_request(
        run_dir, backend="vllm", scenario="serving", n_prompts=12, max_output_tokens=6,
        serving={"request_rate": 20, "arrival": "constant"},
    )  # fmt: skip
    os.environ.update(standin_env())  # the server inherits the harness's environment
    assert run_experiment(run_dir) == 0, (run_dir / "error.json").read_text()
    res = ExperimentResult.model_validate_json((run_dir / "result.json").read_text())
    s = res.serving
    assert s is not None and (s.requests, s.completed, s.failed) == (12, 12, 0)
    assert s.load_generator.senders == 2 and s.load_generator.cpu_s
    table = pq.read_table(run_dir / "requests.parquet").to_pydict()
    assert table["request"] == list(range(12))
    due = [t - table["scheduled_s"][0] for t in table["scheduled_s"]]
    assert due == pytest.approx([i / 20 for i in range(12)], abs=1e-6)
