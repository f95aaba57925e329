"""The load generator's several senders (`loadgen.py --senders N`, serving/fanout.py) and the
harness's choice of N (serving/senders.py): the split, the cap's shares and the merge; a
sender that fails, or a parent that is killed; the run over two real sender processes
against the local SSE server of test_loadgen; and the harness refusing a rate past the limit
before the server starts."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llem_harness.contract import ErrorInfo
from llem_harness.run import run_experiment
from llem_harness.serving import fanout, loadgen
from llem_harness.serving.loadgen import RequestSpec, main
from llem_harness.serving.senders import (
    PER_SENDER_RPS,
    SendRateError,
    sender_cap,
    senders_for,
)
from tests.harness.test_harness_run import write_request
from tests.harness.test_loadgen import FakeServer, specs_of, write_specs

LOADGEN = Path(loadgen.__file__)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def test_the_split_deals_the_due_order_round_robin() -> None:
    specs = specs_of([0.3, 0.0, 0.1, 0.2, 0.0, 0.5, 0.4])  # ids 0..6, out of due order
    parts = fanout.split(specs, 3)
    # Due order (ties in input order): 1, 4, 2, 3, 0, 6, 5.
    assert [[s.id for s in part] for part in parts] == [[1, 3, 5], [4, 0], [2, 6]]
    for part in parts:
        assert [s.arrival_s for s in part] == sorted(s.arrival_s for s in part)
    assert [s.id for s in fanout.split(specs, 1)[0]] == [1, 4, 2, 3, 0, 6, 5]


def test_the_cap_is_divided_between_the_senders() -> None:
    assert fanout.shares(None, 3) == [None, None, None]
    assert fanout.shares(7, 3) == [3, 2, 2]
    assert fanout.shares(6, 3) == [2, 2, 2]
    assert fanout.shares(2, 2) == [1, 1]
    with pytest.raises(ValueError, match="each of 3 senders"):
        fanout.shares(2, 3)


def rec(i: int) -> dict[str, Any]:
    return {"id": i, "ok": True}


def test_the_merge_keeps_the_input_order_and_one_record_a_request() -> None:
    specs = specs_of([0.3, 0.0, 0.1, 0.2])
    merged = fanout.merge(specs, [[rec(3), rec(1)], [rec(2), rec(0)]])
    assert [r["id"] for r in merged] == [0, 1, 2, 3]
    missing = re.escape("1 request(s) without a record, e.g. ids [2]")
    with pytest.raises(RuntimeError, match=missing):
        fanout.merge(specs, [[rec(3), rec(1)], [rec(0)]])
    with pytest.raises(RuntimeError, match="request 1 twice"):
        fanout.merge(specs, [[rec(3), rec(1), rec(2)], [rec(0), rec(1)]])
    with pytest.raises(RuntimeError, match="request 9 twice or unasked"):
        fanout.merge(specs, [[rec(3), rec(1), rec(2)], [rec(0), rec(9)]])


# A stand-in for loadgen.py as a sender of several: it keeps the protocol (ready, the start on
# stdin, its records, a summary line with 1.5 CPU seconds); a request id of -1 in its share
# makes it fail before it is ready, -2 after the start (once the other has hung), and -3
# hang after writing its pid.
FAKE_SENDER = """
import json, os, sys, time
a = sys.argv
specs = [json.loads(x) for x in open(a[a.index("--requests") + 1])]
ids = {s["id"] for s in specs}
hung = os.path.join(os.path.dirname(a[a.index("--out") + 1]), "..", "hung")
if -1 in ids:
    sys.exit("boom before ready")
print("ready", flush=True)
start = float(sys.stdin.readline())
if -2 in ids:
    for _ in range(600):
        if os.path.exists(hung):
            break
        time.sleep(0.05)
    sys.stderr.write("boom after the start\\n")
    sys.exit(3)
if -3 in ids:
    open(hung + ".tmp", "w").write(str(os.getpid()))
    os.replace(hung + ".tmp", hung)
    time.sleep(600)
with open(a[a.index("--out") + 1], "w") as out:
    for s in specs:
        out.write(json.dumps({"id": s["id"], "scheduled_s": start + s["arrival_s"]}) + "\\n")
print(json.dumps({"start_s": start, "end_s": start + len(specs), "cpu_s": 1.5, "senders": 1}))
"""


def fake_args(tmp_path: Path, cap: int | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        url="http://127.0.0.1:9", model="m", timeout_s=5.0, extra_json=None, keep_text=False,
        max_concurrency=cap, out=tmp_path / "out.jsonl",
    )  # fmt: skip


def test_the_senders_share_one_start_and_their_cpu_time_adds_up(tmp_path: Path) -> None:
    script = tmp_path / "sender.py"
    script.write_text(FAKE_SENDER)
    specs = specs_of([0.0, 0.1, 0.2, 0.3, 0.4])
    start, end, cpu, records = fanout.run_senders(script, specs, 3, fake_args(tmp_path))
    assert [r["id"] for r in records] == [0, 1, 2, 3, 4]
    assert [r["scheduled_s"] - start for r in records] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert end == start + 2  # the longest share's (2 requests) summary
    assert 3 * 1.5 <= cpu < 3 * 1.5 + 1.0  # every sender's, and the parent's own
    assert [p.name for p in tmp_path.iterdir()] == ["sender.py"]  # the shares' folder is gone


@pytest.mark.parametrize(
    ("bad_id", "what"),
    [(-1, "stopped before it was ready (exit 1): boom before ready"), (-2, "failed (exit 3)")],
)
def test_a_failing_sender_fails_the_load_and_the_others_are_killed(
    tmp_path: Path, bad_id: int, what: str
) -> None:
    script = tmp_path / "sender.py"
    script.write_text(FAKE_SENDER)
    specs = [RequestSpec(-3, "x", 1, 0.0), RequestSpec(bad_id, "x", 1, 0.1)]
    with pytest.raises(RuntimeError, match="sender 2 of 2 ") as err:
        fanout.run_senders(script, specs, 2, fake_args(tmp_path))
    assert what in str(err.value)
    if bad_id == -2:  # the hung sender had started: it was killed, and reaped
        assert "boom after the start" in str(err.value)
        assert not alive(int((tmp_path / "hung").read_text()))


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def run_by_path(*args: str) -> subprocess.CompletedProcess[str]:
    """As the harness runs it: `python -I loadgen.py` (no folder of ours on sys.path)."""
    cmd = [sys.executable, "-I", str(LOADGEN), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_two_senders_send_every_request_once_on_one_schedule(
    server: FakeServer, tmp_path: Path
) -> None:
    offsets = [0.0, 0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.12, 0.15]
    specs = specs_of(offsets, 3)
    specs[4] = RequestSpec(4, "fail", 3, offsets[4])  # a failed request keeps its record
    write_specs(tmp_path / "in.jsonl", specs)
    out = tmp_path / "out.jsonl"
    res = run_by_path(
        *("--url", server.url, "--model", "tiny", "--requests", str(tmp_path / "in.jsonl")),
        *("--out", str(out), "--senders", "2", "--max-concurrency", "3"),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)  # exactly one line
    counts = [summary[k] for k in ("senders", "requests", "ok", "failed")]
    assert counts == [2, 10, 9, 1] and summary["cpu_s"] > 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(10))  # one each, in the input's order
    assert [r["ok"] for r in records] == [i != 4 for i in range(10)]
    for spec, r in zip(specs, records, strict=True):  # one start instant for both senders
        assert r["scheduled_s"] - summary["start_s"] == pytest.approx(spec.arrival_s, abs=1e-9)
        assert r["sent_s"] >= r["scheduled_s"]
    assert summary["start_s"] <= records[0]["sent_s"] <= records[-1]["done_s"] <= summary["end_s"]
    assert len(server.bodies) == 10  # the server saw each request once
    assert server.max_in_flight <= 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_senders_beyond_the_requests_or_the_cap(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_specs(tmp_path / "in.jsonl", specs_of([0.0, 0.01], 2))
    base = ["--url", server.url, "--model", "tiny", "--requests", str(tmp_path / "in.jsonl")]
    base += ["--out", str(tmp_path / "out.jsonl")]
    assert main([*base, "--senders", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["senders"], summary["ok"]) == (2, 2)  # no sender without a request
    assert main([*base, "--senders", "0"]) == 2
    assert main([*base, "--senders", "3", "--max-concurrency", "2"]) == 2
    assert "at most --max-concurrency" in capsys.readouterr().err


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(c) for c in text.split()]


def test_the_senders_die_with_their_parent(server: FakeServer, tmp_path: Path) -> None:
    """A parent killed outright (SIGKILL: the harness's end of a run) leaves no sender."""
    write_specs(tmp_path / "in.jsonl", specs_of([0.0, 0.0], 2))
    cmd = [sys.executable, "-I", str(LOADGEN), "--url", server.url, "--model", "tiny"]
    cmd += ["--requests", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")]
    cmd += ["--senders", "2", "--extra-json", '{"mode": "hang"}', "--timeout-s", "300"]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(server.heads) < 2 and time.monotonic() < deadline:  # both senders are sending
        time.sleep(0.05)
    senders = children(parent.pid)
    assert len(server.heads) == 2 and len(senders) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in senders) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in senders), "a sender outlived its parent"


def test_the_sender_count_follows_the_mean_rate_within_the_cores() -> None:
    assert senders_for(None, None, 2, "k", "k") == 1  # inf: everything at once
    assert senders_for(PER_SENDER_RPS, None, 2, "k", "k") == 1
    assert senders_for(PER_SENDER_RPS + 1, None, 2, "k", "k") == 2
    assert senders_for(3.5 * PER_SENDER_RPS, None, 16, "k", "k") == 4
    assert senders_for(3.5 * PER_SENDER_RPS, 2, 16, "k", "k") == 2  # each needs a slot
    assert [sender_cap(c) for c in (1, 2, 3, 4, 16)] == [1, 2, 2, 3, 15]  # one for the server
    with pytest.raises(SendRateError) as err:
        senders_for(3 * PER_SENDER_RPS, None, 3, "serving.request_rate", "serving.request_rate")
    msg = str(err.value)
    assert msg.startswith(f"serving.request_rate asks for {3 * PER_SENDER_RPS:,.0f} requests/s")
    assert f"sends on time here: {2 * PER_SENDER_RPS:,.0f} requests/s (2 sender" in msg
    assert "on the 3 core(s)" in msg and "Lower serving.request_rate" in msg


@pytest.mark.parametrize("arrival", ["constant", "trace"])
def test_the_harness_refuses_a_rate_past_the_limit_before_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrival: str
) -> None:
    monkeypatch.setattr("llem_harness.serving.backend.usable_cores", lambda: 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rate = 3 * PER_SENDER_RPS  # needs 3 senders; 2 cores allow 2
    serving: dict[str, Any] = {"request_rate": rate, "arrival": "constant"}
    if arrival == "trace":  # 9 requests 1/8 s apart (8 req/s), replayed rate/8 times faster
        (run_dir / "t.jsonl").write_text("".join(f'{{"time": {i / 8}}}\n' for i in range(9)))
        serving = {"arrival": "trace", "trace": "t.jsonl", "trace_scale": rate / 8}
    write_request(
        run_dir, backend="vllm", scenario="serving", n_prompts=4, max_output_tokens=4,
        serving=serving,
    )  # fmt: skip
    assert run_experiment(run_dir) == 2  # a config error
    err = ErrorInfo.model_validate_json((run_dir / "error.json").read_text())
    assert err.type == "SendRateError" and err.phase == "config"
    limit = f"{2 * PER_SENDER_RPS:,.0f} requests/s"
    assert f"asks for {rate:,.0f} requests/s" in err.message and limit in err.message
    if arrival == "trace":
        assert err.message.startswith(f"the trace t.jsonl at serving.trace_scale {rate / 8:g}")
        assert "Lower serving.trace_scale" in err.message
    else:
        assert err.message.startswith("serving.request_rate asks")
    assert not (run_dir / "server.log").exists()  # the server never started
