"""The serving load generator against a real local HTTP server that streams SSE as vLLM's API
server does (chunked transfer encoding, one `data:` event a token, a usage event, `[DONE]`),
and its arrival processes' statistics."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llem_harness.serving.arrivals import arrival_offsets
from llem_harness.serving.loadgen import RequestSpec, main, run_load

REPO = Path(__file__).resolve().parents[2]
USAGE_PROMPT_EXTRA = 1000  # the fake server's usage says len(prompt) + this, so usage is visible


def sse(obj: Any, sep: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(obj).encode() + sep + sep


def chunk(data: bytes, ext: str = "") -> bytes:
    return f"{len(data):x}{ext}\r\n".encode() + data + b"\r\n"


class FakeServer:
    """An asyncio HTTP/1.1 server on 127.0.0.1 in a thread of its own. Each POST's body picks
    the answer: `mode` (an extra body field) "chunked" (the default: vLLM's stream),
    "quiet_start" (the same, opened by an empty event, no usage), "plain" (no framing, CRLF
    events, text only, no usage, no [DONE], then EOF), "length" (Content-Length), "garbage",
    "error_event", "hang"; `ids_per_event` token ids an event (1); a prompt "fail" gets 500."""

    def __init__(self, step_s: float = 0.005) -> None:
        self.step_s = step_s
        self.bodies: list[dict[str, Any]] = []
        self.heads: list[tuple[str, dict[str, str], float]] = []  # target, headers, received
        self.in_flight = 0
        self.max_in_flight = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(5)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await asyncio.sleep(0)  # let the closed transports finish

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = json.loads(await reader.readexactly(int(headers["content-length"])))
            assert method == "POST"
            self.heads.append((target, headers, time.monotonic()))
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await self.respond(body, reader, writer)
            finally:  # no await between the last write and here: a freed slot is seen at once
                self.in_flight -= 1
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def respond(
        self, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        mode, n, prompt = body.get("mode", "chunked"), body["max_tokens"], body["prompt"]
        if prompt == "fail":
            text = json.dumps({"message": "engine exploded", "pad": "e" * 1000}).encode()
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json")
            writer.write(f"\r\nContent-Length: {len(text)}\r\n\r\n".encode() + text)
            return
        if mode == "hang":  # say nothing until the client gives up
            await reader.read()
            return
        ids = [7] * body.get("ids_per_event", 1)
        token = {"id": "cmpl-1", "choices": [{"index": 0, "text": "x", "token_ids": ids}]}
        token["usage"] = None
        prompt_tokens = (len(prompt) if isinstance(prompt, list) else 1) + USAGE_PROMPT_EXTRA
        usage = {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n}}
        if mode == "length":
            text = b"".join([sse(token)] * n + [sse(usage), b"data: [DONE]\n\n"])
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            writer.write(f"Content-Length: {len(text)}\r\n\r\n".encode() + text)
            return
        if mode == "plain":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            for _ in range(n):
                await asyncio.sleep(self.step_s)
                event = {"choices": [{"index": 0, "text": "y"}]}
                writer.write(b": ping\r\ndata:" + json.dumps(event).encode() + b"\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        if mode == "quiet_start":  # an event with no text and no token ids is not a token
            empty = {"choices": [{"index": 0, "text": "", "token_ids": []}], "usage": None}
            writer.write(chunk(sse(empty)))
            await asyncio.sleep(self.step_s * 4)
        if mode == "garbage":
            writer.write(chunk(b"data: {not json\n\n"))
            writer.write(b"0\r\n\r\n")
            return
        for i in range(n):
            await asyncio.sleep(self.step_s)
            event = sse(token)
            if i == 0:  # one event over two chunks
                writer.write(chunk(event[:9]))
                await writer.drain()
                writer.write(chunk(event[9:]))
            elif i in (2, 3):  # one chunk over 3 reads, cut in its size line or in its data
                frame = chunk(event)
                cuts = [0, 1, 12, len(frame)] if i == 2 else [0, 6, 12, len(frame)]
                for a, b in itertools.pairwise(cuts):
                    writer.write(frame[a:b])
                    await writer.drain()
                    await asyncio.sleep(0.002)
            else:
                writer.write(chunk(event, ";ext=1" if i == 1 else ""))
        if mode == "quiet_start":
            pass  # and no usage: the tokens are counted
        elif mode == "error_event":
            writer.write(chunk(sse({"error": {"message": "boom", "type": "BadRequestError"}})))
        else:
            writer.write(chunk(sse(usage)))
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def load(url: str, specs: list[RequestSpec], **kw: Any) -> tuple[float, list[dict[str, Any]]]:
    return asyncio.run(run_load(url, "tiny", specs, **kw))


def specs_of(offsets: list[float], max_tokens: int = 4, prompt: Any = None) -> list[RequestSpec]:
    return [
        RequestSpec(i, [1, 2, 3] if prompt is None else prompt, max_tokens, at)
        for i, at in enumerate(offsets)
    ]


def test_records_are_complete_and_ordered(server: FakeServer) -> None:
    # Given out of due order: the records still come back in the specs' order.
    specs = [RequestSpec(i, [5] * (i + 1), 3 + i, at) for i, at in enumerate([0.06, 0.0, 0.03])]
    start, records = load(server.url, specs)
    assert [r["id"] for r in records] == [0, 1, 2]
    for spec, r in zip(specs, records, strict=True):
        assert r["ok"] is True and r["status"] == 200 and r["error"] is None
        assert r["scheduled_s"] == pytest.approx(start + spec.arrival_s, abs=1e-9)
        assert r["sent_s"] >= r["scheduled_s"] - 1e-6
        assert r["first_token_s"] >= r["sent_s"]
        assert r["last_token_s"] > r["first_token_s"]  # the server sleeps between tokens
        assert r["done_s"] >= r["last_token_s"]
        assert r["output_tokens"] == spec.max_tokens
        assert r["prompt_tokens"] == len(spec.prompt) + USAGE_PROMPT_EXTRA  # usage wins
    sent = sorted(records, key=lambda r: r["sent_s"])
    assert [r["id"] for r in sent] == [1, 2, 0]


def test_the_text_is_kept_only_when_asked(server: FakeServer) -> None:
    _, kept = load(server.url, specs_of([0.0, 0.0], 3), keep_text=True)
    assert [r["text"] for r in kept] == ["xxx", "xxx"]  # one piece per token event
    _, plain = load(server.url, specs_of([0.0], 2), extra_body={"mode": "plain"}, keep_text=True)
    assert plain[0]["text"] == "yy"
    _, records = load(server.url, specs_of([0.0], 3))
    assert records[0]["ok"] and records[0]["text"] is None


def test_body_and_headers_sent(server: FakeServer) -> None:
    extra = {"ignore_eos": True, "return_token_ids": True, "temperature": 0.0}
    _, records = load(server.url + "/prefix/", specs_of([0.0], 2), extra_body=extra)
    assert records[0]["ok"]
    assert server.bodies == [
        {
            "model": "tiny",
            "prompt": [1, 2, 3],
            "max_tokens": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
            **extra,
        }
    ]
    target, headers, _ = server.heads[0]
    assert target == "/prefix/v1/completions"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "text/event-stream"
    assert headers["connection"] == "close"
    assert headers["host"] == server.url.removeprefix("http://")


def test_plain_and_length_bodies(server: FakeServer) -> None:
    # No framing, CRLF events, a comment, `data:` without a space, text only, no usage, no
    # [DONE]: the tokens are counted, and the prompt's length stands in for usage.
    _, plain = load(server.url, specs_of([0.0, 0.0], 5), extra_body={"mode": "plain"})
    _, text = load(server.url, specs_of([0.0], 5, "hi"), extra_body={"mode": "plain"})
    _, length = load(server.url, specs_of([0.0], 6), extra_body={"mode": "length"})
    for r in plain:
        assert r["ok"] and r["output_tokens"] == 5 and r["prompt_tokens"] == 3
    assert text[0]["ok"] and text[0]["prompt_tokens"] is None
    assert length[0]["ok"] and length[0]["output_tokens"] == 6
    assert length[0]["prompt_tokens"] == 3 + USAGE_PROMPT_EXTRA


def test_token_ids_are_counted_and_empty_events_are_not_tokens(server: FakeServer) -> None:
    extra = {"mode": "quiet_start", "ids_per_event": 3}
    _, records = load(server.url, specs_of([0.0], 4), extra_body=extra)
    r = records[0]
    assert r["ok"] and r["output_tokens"] == 12 and r["prompt_tokens"] == 3  # no usage
    # The empty event came 4 steps (20 ms) before the first token.
    assert r["first_token_s"] - r["sent_s"] >= 0.02


def test_max_concurrency_is_respected(server: FakeServer) -> None:
    # All due at once: exactly the cap is in flight at the peak.
    _, records = load(server.url, specs_of([0.0] * 8, 10), max_concurrency=3)
    assert all(r["ok"] for r in records)
    assert server.max_in_flight == 3
    # The same load without a cap: all 8 at once (so the count above measures something).
    server.max_in_flight = 0
    _, records = load(server.url, specs_of([0.0] * 8, 10))
    assert server.max_in_flight == 8
    # Arrivals faster than the server answers: due requests queue for a slot, then go.
    server.max_in_flight = 0
    offsets = arrival_offsets(10, 100.0, "constant")
    _, records = load(server.url, specs_of(offsets, 10), max_concurrency=2)
    assert all(r["ok"] for r in records)
    assert server.max_in_flight <= 2
    assert max(r["sent_s"] - r["scheduled_s"] for r in records) > 0.05  # waited for a slot


def test_constant_arrivals_are_sent_on_time(server: FakeServer) -> None:
    offsets = arrival_offsets(10, 20.0, "constant")
    start, records = load(server.url, specs_of(offsets, 2))
    assert all(r["ok"] for r in records)
    for at, r, (_, _, received) in zip(offsets, records, server.heads, strict=True):
        assert r["sent_s"] >= r["scheduled_s"]
        assert r["sent_s"] - start == pytest.approx(at, abs=0.05)
        assert received - start == pytest.approx(at, abs=0.05)


def test_http_error_fails_only_that_request(server: FakeServer) -> None:
    specs = specs_of([0.0, 0.0, 0.0], 3)
    specs[1] = RequestSpec(1, "fail", 3, 0.0)
    _, records = load(server.url, specs)
    bad = records[1]
    assert bad["ok"] is False and bad["status"] == 500
    assert bad["error"].startswith("HTTP 500: ") and "engine exploded" in bad["error"]
    assert len(bad["error"]) == len("HTTP 500: ") + 500
    assert bad["first_token_s"] is None and bad["output_tokens"] == 0
    assert [r["ok"] for r in records] == [True, False, True]


def test_broken_streams_fail_without_raising(server: FakeServer) -> None:
    _, garbage = load(server.url, specs_of([0.0], 3), extra_body={"mode": "garbage"})
    assert garbage[0]["ok"] is False and garbage[0]["status"] == 200
    assert garbage[0]["error"].startswith("JSONDecodeError: ")
    _, err = load(server.url, specs_of([0.0], 3), extra_body={"mode": "error_event"})
    assert err[0]["ok"] is False and err[0]["error"] == "stream error: boom"
    assert err[0]["first_token_s"] is not None and err[0]["output_tokens"] == 3
    t0 = time.monotonic()
    _, hung = load(server.url, specs_of([0.0], 3), extra_body={"mode": "hang"}, timeout_s=0.2)
    assert time.monotonic() - t0 < 2.0
    assert hung[0]["ok"] is False and hung[0]["error"] == "timeout after 0.2 s"
    assert hung[0]["sent_s"] is not None and hung[0]["done_s"] - hung[0]["sent_s"] >= 0.19
    # A whole stream without a token (here: only an empty event, then [DONE]).
    _, empty = load(server.url, specs_of([0.0], 0), extra_body={"mode": "quiet_start"})
    assert empty[0]["ok"] is False and empty[0]["status"] == 200
    assert empty[0]["error"] == "no token event in the response"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_connection_refused() -> None:
    _, records = load(f"http://127.0.0.1:{free_port()}", specs_of([0.0, 0.01]))
    for r in records:
        assert r["ok"] is False and r["status"] is None and r["sent_s"] is None
        assert r["error"].startswith("ConnectionRefusedError: ")
        assert r["done_s"] >= r["scheduled_s"]


def test_run_load_rejects_bad_options() -> None:
    for url, kw in [
        ("https://127.0.0.1:1", {}),
        ("127.0.0.1:1", {}),
        ("http://127.0.0.1:1", {"max_concurrency": 0}),
        ("http://127.0.0.1:1", {"timeout_s": 0.0}),
    ]:
        with pytest.raises(ValueError):
            load(url, specs_of([0.0]), **kw)


def gaps(offsets: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(offsets)]


def test_constant_offsets_are_exact() -> None:
    assert arrival_offsets(5, 10.0, "constant") == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert arrival_offsets(0, 10.0, "constant") == []


def test_poisson_gaps() -> None:
    offsets = arrival_offsets(4000, 5.0, "poisson", seed=3)
    assert len(offsets) == 4000 and offsets[0] == 0.0
    assert offsets == sorted(offsets)
    g = gaps(offsets)
    assert statistics.fmean(g) == pytest.approx(0.2, rel=0.05)
    assert statistics.stdev(g) / statistics.fmean(g) == pytest.approx(1.0, rel=0.1)


def test_gamma_gaps() -> None:
    g = gaps(arrival_offsets(20000, 5.0, "gamma", burstiness=0.25, seed=1))
    assert statistics.fmean(g) == pytest.approx(0.2, rel=0.05)
    assert statistics.stdev(g) / statistics.fmean(g) == pytest.approx(2.0, rel=0.1)
    smooth = gaps(arrival_offsets(20000, 5.0, "gamma", burstiness=4.0, seed=1))
    assert statistics.stdev(smooth) / statistics.fmean(smooth) == pytest.approx(0.5, rel=0.1)


def test_seed_reproducibility() -> None:
    for arrival in ("poisson", "gamma"):
        a = arrival_offsets(50, 10.0, arrival, burstiness=0.5, seed=7)
        assert a == arrival_offsets(50, 10.0, arrival, burstiness=0.5, seed=7)
        assert a != arrival_offsets(50, 10.0, arrival, burstiness=0.5, seed=8)


def test_infinite_rate_and_duration_bound() -> None:
    assert arrival_offsets(4, None, "poisson") == [0.0] * 4
    with pytest.raises(ValueError, match="request count"):
        arrival_offsets(None, None, "poisson", duration_s=5.0)
    constant = arrival_offsets(None, 20.0, "constant", duration_s=1.0)
    assert len(constant) == 20 and constant[-1] == pytest.approx(0.95)
    poisson = arrival_offsets(None, 50.0, "poisson", seed=2, duration_s=10.0)
    assert max(poisson) < 10.0 and 400 < len(poisson) < 600
    assert poisson == arrival_offsets(None, 50.0, "poisson", seed=2, duration_s=10.0)


def test_arrival_offsets_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="constant, poisson, gamma"):
        arrival_offsets(4, 1.0, "uniform")
    for kw in [
        {"n": 4, "duration_s": 1.0},
        {"n": None},
        {"n": -1},
        {"n": 4, "rate": 0.0},
        {"n": 4, "rate": -1.0},
        {"n": 4, "rate": float("inf")},
        {"n": 4, "arrival": "gamma", "burstiness": 0.0},
    ]:
        args = {"rate": 1.0, "arrival": "poisson"} | kw
        with pytest.raises(ValueError):
            arrival_offsets(**args)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    path = [str(REPO / "harness"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(path)}
    cmd = [sys.executable, "-m", "llem_harness.serving.loadgen", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def write_specs(path: Path, specs: list[RequestSpec]) -> None:
    path.write_text("".join(json.dumps(s.__dict__) + "\n" for s in specs), encoding="utf-8")


def test_cli_end_to_end(server: FakeServer, tmp_path: Path) -> None:
    specs = specs_of([0.0, 0.02, 0.04, 0.06], 3)
    specs[2] = RequestSpec(2, "fail", 3, 0.04)
    write_specs(tmp_path / "in.jsonl", specs)
    out = tmp_path / "out.jsonl"
    res = run_cli(
        *("--url", server.url, "--model", "tiny", "--requests", str(tmp_path / "in.jsonl")),
        *("--out", str(out), "--max-concurrency", "2", "--extra-json", '{"seed": 5}'),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)  # exactly one line
    assert summary.keys() == {"start_s", "end_s", "cpu_s", "requests", "ok", "failed", "senders"}
    assert summary["senders"] == 1
    assert 0 < summary["cpu_s"] < summary["end_s"] - summary["start_s"] + 5
    assert (summary["requests"], summary["ok"], summary["failed"]) == (4, 3, 1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [0, 1, 2, 3]
    assert [r["ok"] for r in records] == [True, True, False, True]
    assert records[2]["status"] == 500
    assert summary["start_s"] <= records[0]["sent_s"] <= records[-1]["done_s"] <= summary["end_s"]
    for spec, r in zip(specs, records, strict=True):
        assert r["scheduled_s"] - summary["start_s"] == pytest.approx(spec.arrival_s, abs=1e-9)
    assert all(b["seed"] == 5 for b in server.bodies)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_cli_rejects_a_malformed_requests_file(tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": 0, "prompt": [1], "max_tokens": 2, "arrival_s": 0}\n{"id": 1,\n')
    out = tmp_path / "out.jsonl"
    base = ["--url", "http://127.0.0.1:9", "--model", "m", "--out", str(out)]
    res = run_cli(*base, "--requests", str(bad))
    assert res.returncode == 2
    assert f"{bad}:2:" in res.stderr and res.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"id": 0, "prompt": [1], "max_tokens": 0, "arrival_s": 0}', "'max_tokens'"),
        ('{"id": 0, "prompt": [1], "arrival_s": 0}', "'max_tokens'"),
        ('{"id": 0, "prompt": [], "max_tokens": 1, "arrival_s": 0}', "'prompt'"),
        ('{"id": 0, "prompt": [1.5], "max_tokens": 1, "arrival_s": 0}', "'prompt'"),
        ('{"id": "a", "prompt": "x", "max_tokens": 1, "arrival_s": 0}', "'id'"),
        ('{"id": 0, "prompt": "x", "max_tokens": 1, "arrival_s": -1}', "'arrival_s'"),
        ('{"id": 0, "prompt": "x", "max_tokens": 1, "arrival_s": NaN}', "'arrival_s'"),
        ("[1, 2]", "JSON object"),
        ("", "no requests"),
    ],
)
def test_main_rejects_bad_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(content + "\n")
    args = ["--url", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path / "o.jsonl")]
    assert main([*args, "--requests", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and problem in err


def test_main_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "in.jsonl"
    write_specs(good, specs_of([0.0]))
    base = ["--model", "m", "--requests", str(good), "--out", str(tmp_path / "o.jsonl")]
    assert main(["--url", "https://127.0.0.1:9", *base]) == 2
    assert main(["--url", "http://127.0.0.1:9", *base, "--max-concurrency", "0"]) == 2
    assert main(["--url", "http://127.0.0.1:9", *base, "--extra-json", "[1]"]) == 2
    assert main(["--url", "http://127.0.0.1:9", *base, "--extra-json", "{"]) == 2
    assert "--extra-json" in capsys.readouterr().err
    missing = tmp_path / "nope.jsonl"
    assert main(["--url", "http://127.0.0.1:9", *base, "--requests", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["--url", "http://127.0.0.1:9", "--model", "m"]) == 2  # argparse: missing args
    nodir = tmp_path / "no" / "o.jsonl"
    assert main(["--url", "http://127.0.0.1:9", *base, "--out", str(nodir)]) == 2
