"""The engine conformance suite (tests/conformance/engine_suite.py) on this machine: pytorch for
real, tensorrt against its stand-in. vllm-cpu runs it inside its CPU test image
(tests/docker/test_conformance.py), the echo engine from its own distribution
(tests/harness/test_engine_registry.py)."""

from __future__ import annotations

import pytest

from tests.conformance.engine_suite import CHECKS, run_suite
from tests.harness.test_tensorrt_backend import CALLS, fake_trtllm  # noqa: F401 (fixture)

EVERY_CHECK = list(CHECKS)


@pytest.mark.parametrize("cache", ["static", "dynamic"])
def test_pytorch_passes_the_conformance_suite(cache: str) -> None:
    assert run_suite("pytorch", {"cache_implementation": cache}) == EVERY_CHECK


def test_tensorrt_passes_the_conformance_suite_on_its_stand_in(fake_trtllm: None) -> None:  # noqa: F811
    assert run_suite("tensorrt", {"max_batch_size": 4}) == EVERY_CHECK
    assert CALLS["shutdown"] is True


def test_the_suite_fails_an_engine_that_cuts_a_response_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llem_harness.backends.pytorch.backend import PyTorchBackend

    real = PyTorchBackend.generate

    def short(self: PyTorchBackend, prompts: list[list[int]], **kw: object) -> object:
        res = real(self, prompts, **kw)  # type: ignore[arg-type]
        res.lengths[0] -= 1
        return res

    monkeypatch.setattr(PyTorchBackend, "generate", short)
    with pytest.raises(AssertionError, match=r"\[5, 6, 6, 6\]"):
        run_suite("pytorch")
