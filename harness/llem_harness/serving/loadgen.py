"""A stdlib-only asynchronous load generator for an OpenAI-compatible streaming completions
server (`vllm serve`, `trtllm-serve`), run as its own process beside the server, on loopback.
The harness runs it by path (`python -I`): it imports the standard library only.

- Arrivals: each request's due time comes with it (`arrival_s`, serving/arrivals.py).
- Dispatch (`run_load`): requests start at their due time, then wait for a concurrency slot
  (as `bench serve`), so `sent_s - scheduled_s` is the client-side queueing.
- Each request is one HTTP/1.1 connection (`Connection: close`, asyncio streams); the body
  (chunked, Content-Length, or to EOF) feeds an incremental SSE parser. An event whose choices
  carry text or token ids is a token event (`len(token_ids)` tokens, else 1); the usage event
  gives the exact counts. About 20 µs of one core per event (against a local stand-in).
- Times are `time.monotonic()`, shared with the harness's process. `sent_s`: the connection is
  open, the request about to be written; `done_s`: `[DONE]` or the body's end, or the failure.
- A request's failure (refused, HTTP error, malformed stream, error event, the timeout from the
  connection's opening) is in its record (`ok` False, `error`) and never stops the load.
- `--senders N` > 1 (fanout.py): N processes of this script share the requests (round-robin
  in due order), one start instant and the `--max-concurrency` cap; this one merges them.

CLI: `loadgen.py --url URL --model NAME --requests IN.jsonl --out OUT.jsonl [--max-concurrency
N] [--timeout-s S] [--extra-json '{...}'] [--keep-text] [--senders N]`: one record per line, in
the input's order, then a JSON summary line (`start_s`, `end_s`, `cpu_s`: the load's own CPU
time, every sender's together, `requests`, `ok`, `failed`, `senders`). Exit 0 when the load
ran, 1 when a sender process failed, 2 for bad arguments or input.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

_LIMIT = 1 << 20  # longest status or header line accepted


@dataclass(frozen=True)
class RequestSpec:
    id: int
    prompt: list[int] | str  # token ids or text
    max_tokens: int
    arrival_s: float  # offset from the load's start at which the request is due


@dataclass(slots=True)
class _Request:
    """One request's record in the making, and the incremental SSE parser of its stream."""

    sent: float | None = None
    first: float | None = None
    last: float | None = None
    count: int = 0  # tokens counted from the events
    usage_prompt: int | None = None
    usage_completion: int | None = None
    status: int | None = None
    error: str | None = None
    buf: bytes = b""
    data: list[bytes] = field(default_factory=list)
    text: list[str] | None = None  # the streamed text's pieces, when kept (--keep-text)

    def feed(self, chunk: bytes) -> bool:
        """Parse body bytes; True once `data: [DONE]` has been read. An event the body's end cuts
        short is dropped, as the SSE spec has it."""
        self.buf += chunk
        if b"\n" not in chunk:
            return False
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:  # a blank line ends the event
                if self.data:
                    payload, self.data = b"\n".join(self.data), []
                    if payload.strip() == b"[DONE]":
                        return True
                    self.event(payload)
            elif line.startswith(b"data:"):
                self.data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            # comments (":...") and other fields (event:, id:, retry:) carry nothing here
        return False

    def event(self, payload: bytes) -> None:
        event = json.loads(payload)
        now = time.monotonic()
        if not isinstance(event, dict):
            raise ValueError(f"SSE event is not a JSON object: {payload[:200]!r}")
        n = 0
        for choice in event.get("choices") or ():
            ids, piece = choice.get("token_ids"), choice.get("text")
            n += len(ids) if ids else (1 if piece else 0)
            if self.text is not None and isinstance(piece, str):
                self.text.append(piece)
        if n:
            if self.first is None:
                self.first = now
            self.last = now
            self.count += n
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage_prompt = usage.get("prompt_tokens", self.usage_prompt)
            self.usage_completion = usage.get("completion_tokens", self.usage_completion)
        if event.get("error") or event.get("object") == "error":  # vLLM's mid-stream error
            err = event.get("error") or event
            msg = err.get("message", err) if isinstance(err, dict) else err
            self.error = f"stream error: {msg}"


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before the response's status line")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"malformed status line {line[:200]!r}")
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line[:200]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _more(reader: asyncio.StreamReader, buf: bytes) -> bytes:
    if not (more := await reader.read(65536)):
        raise ConnectionError("body ended inside a chunk")
    return buf + more


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], sink: Callable[[bytes], object]
) -> None:
    """Feed the decoded body to `sink` until it returns a true value or the body ends."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        # Decoded from whatever has arrived (one await a read, not three a chunk).
        buf = b""
        while True:
            while (eol := buf.find(b"\n")) < 0:
                buf = await _more(reader, buf)
            size = int(buf[:eol].split(b";", 1)[0], 16)
            if size == 0:
                return  # the last chunk; trailers, if any, are left unread
            end = eol + 1 + size
            while len(buf) < end + 2:
                buf = await _more(reader, buf)
            if buf[end : end + 2] != b"\r\n":
                raise ValueError("chunk data not followed by CRLF")
            if sink(buf[eol + 1 : end]):
                return
            buf = buf[end + 2 :]
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise ConnectionError(f"body ended {left} bytes short of its Content-Length")
            left -= len(data)
            if sink(data):
                return
    else:
        while data := await reader.read(65536):
            if sink(data):
                return


async def _exchange(addr: tuple[str, int, str, str], body: bytes, req: _Request) -> None:
    """One request on its own connection. Errors are recorded in `req`; only the cancellation of
    a timeout gets out."""
    host, port, host_header, target = addr
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=_LIMIT)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        req.sent = time.monotonic()
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        req.status, headers = await _read_head(reader)
        if req.status == 200:
            await _read_body(reader, headers, req.feed)
        else:  # an error body is short, and the server closes the connection after it
            got = bytearray()
            await _read_body(reader, headers, got.extend)
            req.error = f"HTTP {req.status}: " + got.decode("utf-8", "replace")[:500]
    except Exception as exc:
        req.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()


def _address(
    url: str, path: str, max_concurrency: int | None, timeout_s: float
) -> tuple[str, int, str, str]:
    """Check run_load's options; (host, port, Host header, request target)."""
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url must be http://HOST[:PORT][/PREFIX], got {url!r}")
    target = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return parts.hostname, parts.port or 80, parts.netloc.rpartition("@")[2], target


async def run_load(
    url: str,
    model: str,
    specs: list[RequestSpec],
    *,
    max_concurrency: int | None = None,
    extra_body: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
    path: str = "/v1/completions",
    keep_text: bool = False,
    start: float | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """Send every spec at its due time (start + arrival_s), at most `max_concurrency` in flight
    (a due request waits for a free slot). Returns (start, records), `start` the load's
    `time.monotonic()` (now, or the one given: several senders share it), the records in spec
    order. One request's failure never raises. With `keep_text`, each record has the
    response's text (`text`; else null)."""
    addr = _address(url, path, max_concurrency, timeout_s)
    slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    extra = dict(extra_body or {})
    stream = {"stream": True, "stream_options": {"include_usage": True}}

    async def one(spec: RequestSpec, scheduled: float, body: bytes) -> dict[str, Any]:
        req = _Request(text=[] if keep_text else None)
        if slots is not None:
            await slots.acquire()
        try:
            await asyncio.wait_for(_exchange(addr, body, req), timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 (not the builtin on Python 3.10)
            req.error = f"timeout after {timeout_s:g} s"
        finally:
            done = time.monotonic()
            if slots is not None:
                slots.release()
        if req.error is None and req.first is None:
            req.error = "no token event in the response"
        prompt_tokens = len(spec.prompt) if isinstance(spec.prompt, list) else None
        output_tokens = req.count if req.usage_completion is None else req.usage_completion
        return {
            "id": spec.id,
            "scheduled_s": scheduled,
            "sent_s": req.sent,
            "first_token_s": req.first,
            "last_token_s": req.last,
            "done_s": done,
            "prompt_tokens": prompt_tokens if req.usage_prompt is None else req.usage_prompt,
            "output_tokens": output_tokens,
            "ok": req.status == 200 and req.error is None and req.first is not None,
            "status": req.status,
            "error": req.error,
            "text": None if req.text is None else "".join(req.text),
        }

    tasks: list[asyncio.Task[dict[str, Any]] | None] = [None] * len(specs)
    start = time.monotonic() if start is None else start
    for i in sorted(range(len(specs)), key=lambda i: specs[i].arrival_s):
        spec = specs[i]
        body = {"model": model, "prompt": spec.prompt, "max_tokens": spec.max_tokens, **stream}
        encoded = json.dumps(body | extra, separators=(",", ":")).encode()
        due = start + spec.arrival_s
        while (wait := due - time.monotonic()) > 0:  # asyncio may wake a timer a hair early
            await asyncio.sleep(wait)
        tasks[i] = asyncio.create_task(one(spec, due, encoded))
    records = await asyncio.gather(*(t for t in tasks if t is not None))
    return start, list(records)


def _spec(obj: Any) -> RequestSpec:
    def is_int(v: Any) -> bool:
        return type(v) is int  # not a bool

    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    values: list[Any] = [obj.get(k) for k in ("id", "prompt", "max_tokens", "arrival_s")]
    rid, prompt, max_tokens, arrival = values
    if not is_int(rid):
        raise ValueError(f"'id' must be an integer, got {rid!r}")
    if not (
        isinstance(prompt, str)
        or (isinstance(prompt, list) and all(type(t) is int for t in prompt))
    ):
        raise ValueError(f"'prompt' must be a string or a list of token ids, got {prompt!r:.80}")
    if not prompt:
        raise ValueError("'prompt' is empty")
    if not is_int(max_tokens) or max_tokens < 1:
        raise ValueError(f"'max_tokens' must be an integer >= 1, got {max_tokens!r}")
    if not (is_int(arrival) or isinstance(arrival, float)) or not 0 <= arrival < math.inf:
        raise ValueError(f"'arrival_s' must be a finite number >= 0, got {arrival!r}")
    return RequestSpec(rid, prompt, max_tokens, float(arrival))


def _load_specs(path: Path) -> list[RequestSpec]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    specs: list[RequestSpec] = []
    for lineno, line in enumerate(lines, 1):
        try:
            if line.strip():
                specs.append(_spec(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is one
            raise ValueError(f"{path}:{lineno}: {exc}") from exc
    if not specs:
        raise ValueError(f"{path}: no requests")
    if len({s.id for s in specs}) != len(specs):
        raise ValueError(f"{path}: request ids are not unique")
    return specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llem_harness.serving.loadgen")
    parser.add_argument("--url", required=True, help="server base URL, http://HOST:PORT")
    parser.add_argument("--model", required=True, help="the model name the server serves")
    parser.add_argument("--requests", required=True, type=Path, help="IN.jsonl: one spec a line")
    parser.add_argument("--out", required=True, type=Path, help="OUT.jsonl: one record a line")
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--extra-json", default=None, help="a JSON object merged into each body")
    parser.add_argument("--keep-text", action="store_true", help="record each response's text")
    parser.add_argument("--senders", type=int, default=1, help="sender processes (fanout.py)")
    # One sender of several: the shared start comes on stdin (fanout.wait_for_start).
    parser.add_argument("--start-on-stdin", action="store_true", help=argparse.SUPPRESS)
    return parser


def _check(args: argparse.Namespace) -> tuple[dict[str, Any], list[RequestSpec]]:
    """The extra body fields and the requests; a ValueError for bad arguments or input."""
    _address(args.url, "/", args.max_concurrency, args.timeout_s)
    if not 1 <= args.senders <= (args.max_concurrency or args.senders):
        raise ValueError(
            f"--senders must be >= 1 and at most --max-concurrency (each sender needs a slot of "
            f"the cap), got {args.senders}"
        )
    try:
        extra = json.loads(args.extra_json or "{}")
    except ValueError as exc:
        raise ValueError(f"--extra-json: {exc}") from exc
    if not isinstance(extra, dict):
        raise ValueError("--extra-json must be a JSON object")
    if not args.out.parent.is_dir():
        raise ValueError(f"{args.out}: its directory does not exist")
    return extra, _load_specs(args.requests)


def _fanout() -> ModuleType:
    """fanout.py, beside this file, by path: run as `python -I loadgen.py`, no folder of ours
    is on sys.path (and the package's __init__ imports more than the standard library)."""
    path = Path(__file__).with_name("fanout.py")
    spec = importlib.util.spec_from_file_location("_loadgen_fanout", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the problem (or the help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        extra, specs = _check(args)
        at = _fanout().wait_for_start() if args.start_on_stdin else None
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    senders = min(args.senders, len(specs))
    if senders > 1:
        try:
            start, end, cpu, records = _fanout().run_senders(Path(__file__), specs, senders, args)
        except RuntimeError as exc:  # a sender failed: the others are killed
            print(f"loadgen: {exc}", file=sys.stderr)
            return 1
    else:
        load = run_load(
            args.url, args.model, specs, max_concurrency=args.max_concurrency, extra_body=extra,
            timeout_s=args.timeout_s, keep_text=args.keep_text, start=at,
        )  # fmt: skip
        cpu0 = time.process_time()  # the load's own CPU time, the imports and input left out
        start, records = asyncio.run(load)
        end, cpu = time.monotonic(), time.process_time() - cpu0
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, args.out)
    ok = sum(1 for r in records if r["ok"])
    summary = {"start_s": start, "end_s": end, "cpu_s": cpu, "requests": len(records), "ok": ok}
    print(json.dumps(summary | {"failed": len(records) - ok, "senders": senders}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
