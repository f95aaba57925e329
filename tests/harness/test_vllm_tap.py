"""The vLLM backend's token-time tap, on a stand-in engine with vLLM's call shapes
(`OutputProcessor.add_request(request, prompt, ...)`,
`OutputProcessor.process_outputs(outputs, engine_core_timestamp=..., iteration_stats=...)`,
as `vllm/v1/engine/llm_engine.py` calls them in 0.25 and 0.32)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llem_harness.backends.vllm.backend import (
    ENGINE_TS_MODE,
    HOST_TS_MODE,
    TokenTimeTap,
    VLLMBackend,
)
from llem_harness.backends.vllm.models import stable_dummy_model
from llem_harness.config import ExperimentConfig
from llem_harness.steady import steady_window


@dataclass
class CoreOutput:
    request_id: str
    new_token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class CoreRequest:
    request_id: str
    external_req_id: str


@dataclass
class Completion:
    token_ids: list[int]


@dataclass
class ReqOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[Completion]


@dataclass
class Processor:
    """Records what reaches it, like vLLM's OutputProcessor in FINAL_ONLY mode."""

    tokens: dict[str, list[int]] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)

    def add_request(self, request: CoreRequest, prompt: str | None, *rest: Any) -> None:
        self.tokens[request.request_id] = []

    def process_outputs(
        self, outputs: list[CoreOutput], engine_core_timestamp: float | None = None, **kw: Any
    ) -> None:
        for out in outputs:
            self.tokens[out.request_id] += out.new_token_ids
            if out.finish_reason is not None:
                self.finished.append(out.request_id)


class FakeLLM:
    """Continuous batching with `slots` slots, one token per request per step, step `dt` s;
    the engine stamps each step at 1000 + step * dt (or passes no stamp: engine_ts=False)."""

    def __init__(self, slots: int, dt: float, engine_ts: bool = True) -> None:
        self.slots, self.dt, self.engine_ts = slots, dt, engine_ts
        self.llm_engine = types.SimpleNamespace(output_processor=Processor())

    def generate(self, prompts: list[Any], params: Any, use_tqdm: bool) -> list[ReqOutput]:
        proc = self.llm_engine.output_processor
        ids = []
        for i, _ in enumerate(prompts):
            ids.append(f"{i}-internal")
            proc.add_request(CoreRequest(ids[-1], str(i)), None, None, 0)
        waiting, step = list(ids), 0
        running: dict[str, int] = {}
        while waiting or running:
            while waiting and len(running) < self.slots:
                running[waiting.pop(0)] = 0
            step += 1
            outs = []
            for rid in list(running):
                running[rid] += 1
                done = running[rid] == params.max_tokens
                outs.append(CoreOutput(rid, [7], "length" if done else None))
                if done:
                    del running[rid]
            ts = 1000.0 + step * self.dt if self.engine_ts else None
            proc.process_outputs(outs, engine_core_timestamp=ts, iteration_stats=None)
        return [
            ReqOutput(str(i), p["prompt_token_ids"], [Completion(proc.tokens[ids[i]])])
            for i, p in enumerate(prompts)
        ]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)


def backend(llm: FakeLLM, n_out: int) -> VLLMBackend:
    b = VLLMBackend()
    b.cfg = ExperimentConfig.model_validate(
        {"model": "m", "backend": "vllm", "max_output_tokens": n_out}
    )
    b.llm = llm
    return b


@pytest.mark.usefixtures("fake_vllm")
def test_measured_pass_gets_engine_token_times_and_the_tap_goes_away() -> None:
    llm = FakeLLM(slots=4, dt=0.01)
    b = backend(llm, n_out=5)
    res = b.generate([[1, 2, 3]] * 12, timed=True)
    assert res.output_tokens == 60 and len(res.spans) == 12 and len(res.submitted) == 12
    assert b.latency_mode == ENGINE_TS_MODE
    first, last, n = res.spans[0]
    assert first == pytest.approx(1000.01) and last == pytest.approx(1000.05) and n == 5
    assert res.spans[4][0] == pytest.approx(1000.06)  # 2nd wave: the step after the 1st ends
    assert res.itl_ms[0] == pytest.approx(10.0)
    window = steady_window(res.spans, 4)
    assert window is not None
    assert window[0] == pytest.approx(1000.01) and window[1] == pytest.approx(1000.11)
    proc = llm.llm_engine.output_processor
    assert "process_outputs" not in vars(proc) and "add_request" not in vars(proc)
    untimed = b.generate([[1]] * 3, timed=False)
    assert untimed.spans == [] and untimed.output_tokens == 15


@pytest.mark.usefixtures("fake_vllm")
def test_without_an_engine_stamp_the_host_clock_is_used_and_said() -> None:
    b = backend(FakeLLM(slots=2, dt=0.01, engine_ts=False), n_out=3)
    res = b.generate([[1]] * 4, timed=True)
    assert b.latency_mode == HOST_TS_MODE and len(res.spans) == 4
    assert all(
        sub <= first <= last for sub, (first, last, _) in zip(res.submitted, res.spans, strict=True)
    )


def test_tap_removal_restores_the_class_methods() -> None:
    proc = Processor()
    tap = TokenTimeTap(proc)
    proc.add_request(CoreRequest("a-x", "a"), None)
    proc.process_outputs([CoreOutput("a-x", [1], "stop")], engine_core_timestamp=5.0)
    assert tap.by_external_id()["a"][1:] == (5.0, 5.0)
    tap.remove()
    assert proc.process_outputs.__func__ is Processor.process_outputs  # type: ignore[attr-defined]


def test_dummy_model_folder_is_stable_under_the_engine_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(tmp_path))
    folder_a, vocab, tmp_a = stable_dummy_model("llem/tiny-llama")
    folder_b, _, tmp_b = stable_dummy_model("llem/tiny-llama")
    assert folder_a == folder_b and folder_a.parent == tmp_path / "vllm-models"
    assert (folder_a / "config.json").exists() and vocab > 0
    assert tmp_a is None and tmp_b is None  # nothing to delete at close
    assert [p.name for p in (tmp_path / "vllm-models").iterdir()] == [folder_a.name]
