"""A stand-in for vLLM's OpenAI-compatible API server, for unit tests of the serving path
(the real one runs in tests/docker/test_serving.py, in llem-test/vllm:cpu).

`python -m vllm.entrypoints.openai.api_server --port P [...]` with this folder first on
PYTHONPATH: `GET /health` answers 200 once `--stand-in-start-s` (env LLEM_STANDIN_START_S,
default 0.3) has passed; `POST /v1/completions` with `stream: true` streams `max_tokens`
SSE events of one token each (`token_ids` when `return_token_ids`), LLEM_STANDIN_TOKEN_S
apart (default 0.002), then a usage event and `[DONE]`, chunked, as vLLM does. With
LLEM_STANDIN_FAIL=1 it exits with an error before it is ready. With LLEM_STANDIN_SLOTS=N it
streams at most N responses at once and the others wait for a slot (their first token waits
too), so that its latency rises with load and its capacity is known in advance: N slots over
`max_tokens` x LLEM_STANDIN_TOKEN_S seconds a response (the capacity search's test). Every
other argument is accepted and ignored. SIGINT ends it cleanly.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
READY_AFTER = float(os.environ.get("LLEM_STANDIN_START_S", "0.3"))
TOKEN_S = float(os.environ.get("LLEM_STANDIN_TOKEN_S", "0.002"))
SLOTS = int(os.environ.get("LLEM_STANDIN_SLOTS", "0")) or None
GATE = threading.BoundedSemaphore(SLOTS) if SLOTS else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        ready = time.monotonic() - STARTED >= READY_AFTER
        self.send_response(200 if ready and self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _chunk(self, data: dict[str, object] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        body = f"data: {text}\n\n".encode()
        self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if GATE is None:
            self._stream(req)
            return
        with GATE:
            self._stream(req)

    def _stream(self, req: dict[str, object]) -> None:
        n, prompt = int(str(req["max_tokens"])), req["prompt"]
        assert isinstance(prompt, (list, str))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for k in range(n):
            time.sleep(TOKEN_S)
            choice: dict[str, object] = {"index": 0, "text": ""}
            if req.get("return_token_ids"):
                choice["token_ids"] = [3 + k]
            self._chunk({"choices": [choice]})
        usage = {"prompt_tokens": len(prompt), "completion_tokens": n}
        self._chunk({"choices": [], "usage": usage})
        self._chunk("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


def main() -> None:
    if os.environ.get("LLEM_STANDIN_FAIL") == "1":
        print("stand-in: CUDA out of memory (as asked)", flush=True)
        sys.exit(3)
    port = int(sys.argv[sys.argv.index("--port") + 1])
    print(f"stand-in vLLM API server on 127.0.0.1:{port}", flush=True)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stand-in: shut down", flush=True)


if __name__ == "__main__":
    main()
