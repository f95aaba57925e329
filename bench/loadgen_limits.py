"""How fast the load generator sends on time (issue 33, item 4): its send lag (a request's
send time less its due time) and its own CPU share, at rising constant request rates, against
a stand-in server on loopback that answers every request at once (a short SSE stream: 4 token
events, usage, [DONE]), so that only the generator's own limits show.

    .venv/bin/python bench/loadgen_limits.py [--rates 100,250,...] [--senders 1,2]
                                             [--seconds 3] [--tokens 4]

The generator runs as the harness runs it: `python -I loadgen.py --senders N` in its own
process (N > 1: that many sender processes beside it); the stand-in server runs in this
process. On a 2-core machine they share the cores, which is what a run in a container with a
few cores also sees. Prints one row per rate and sender count: requests, achieved rate, send
lag p50/p99/max in ms, the generator's CPU (cpu_s / wall_s, every sender's together: cores)
and the failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADGEN = REPO / "harness" / "llem_harness" / "serving" / "loadgen.py"


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def body(tokens: int) -> bytes:
    event = {"choices": [{"index": 0, "text": "x", "token_ids": [7]}], "usage": None}
    usage = {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": tokens}}
    return b"".join([_sse(event)] * tokens + [_sse(usage), b"data: [DONE]\n\n"])


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(data)}"
    writer.write(head.encode() + b"\r\nConnection: close\r\n\r\n" + data)
    await writer.drain()
    writer.close()


def serve(tokens: int) -> tuple[int, asyncio.AbstractEventLoop]:
    """A stand-in server on a thread of its own; (its port, its loop)."""
    loop = asyncio.new_event_loop()
    data = body(tokens)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, data), "127.0.0.1", 0, backlog=4096
        )
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        await server.serve_forever()

    threading.Thread(target=lambda: loop.run_until_complete(start()), daemon=True).start()
    ready.wait(10)
    return port[0], loop


def one_rate(port: int, rate: float, seconds: float, tokens: int, senders: int) -> dict[str, float]:
    n = max(1, int(rate * seconds))
    with tempfile.TemporaryDirectory() as tmp:
        requests, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        requests.write_text("".join(
            json.dumps({"id": i, "prompt": [1] * 8, "max_tokens": tokens, "arrival_s": i / rate})
            + "\n" for i in range(n)))  # fmt: skip
        cmd = [sys.executable, "-I", str(LOADGEN), "--url", f"http://127.0.0.1:{port}",
               "--model", "m", "--requests", str(requests), "--out", str(out),
               "--senders", str(senders)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 60)
        if done.returncode != 0:
            raise SystemExit(f"loadgen failed (exit {done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        records = [json.loads(x) for x in out.read_text().splitlines()]
    lags = sorted((r["sent_s"] - r["scheduled_s"]) * 1000 for r in records if r["sent_s"])
    wall = summary["end_s"] - summary["start_s"]
    sends = sorted(r["sent_s"] for r in records if r["sent_s"])
    return {
        "rate": rate, "senders": summary["senders"], "requests": n,
        "achieved": (len(sends) - 1) / (sends[-1] - sends[0]),
        "p50": statistics.median(lags), "p99": lags[int(0.99 * (len(lags) - 1))],
        "max": lags[-1], "cpu": summary["cpu_s"] / wall, "failed": summary["failed"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,250,500,1000,2000,4000")
    ap.add_argument("--senders", default="1", help="sender counts, e.g. 1,2")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--tokens", type=int, default=4)
    args = ap.parse_args()
    port, _ = serve(args.tokens)
    print("rate req/s | senders | requests | achieved | lag p50 ms | lag p99 ms | lag max ms "
          "| cpu | failed")  # fmt: skip
    for rate in (float(r) for r in args.rates.split(",")):
        for senders in (int(n) for n in args.senders.split(",")):
            r = one_rate(port, rate, args.seconds, args.tokens, senders)
            print(f"{r['rate']:>10,.0f} | {r['senders']:>7.0f} | {r['requests']:>8,.0f} | "
                  f"{r['achieved']:>8,.0f} | "
                  f"{r['p50']:>10.2f} | {r['p99']:>10.2f} | {r['max']:>10.2f} | "
                  f"{r['cpu']:.2f} | {r['failed']:.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
