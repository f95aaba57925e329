"""`<backend>.engine_args`: the host refuses what the harness sets, the harness checks the
rest against the engine's signatures (a real transformers run here; vLLM's in
tests/docker/test_vllm.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_docker.study.model import parse_axis_key
from llem_harness.config import ExperimentConfig
from llem_harness.contract import ExperimentResult
from llem_harness.engine_args import EngineArgsError, parameters, route
from llem_harness.run import run_experiment
from tests.harness.test_harness_run import write_request


def test_keys_go_to_the_first_entry_point_that_takes_them() -> None:
    def build(model: str, dtype: str = "x", *, enable_chunked_prefill: bool = False) -> None: ...

    def sample(n: int = 1, logprobs: int | None = None, **extra: object) -> None: ...

    targets = {"LLM": parameters(build), "SamplingParams": parameters(sample)}
    assert targets["SamplingParams"] == {"n", "logprobs"}  # not **extra
    got = route("vllm", {"enable_chunked_prefill": True, "logprobs": 2}, targets)
    assert got == {"LLM": {"enable_chunked_prefill": True}, "SamplingParams": {"logprobs": 2}}
    with pytest.raises(EngineArgsError, match="nearest: enable_chunked_prefill") as err:
        route("vllm", {"enable_chunked_prefil": True}, targets)
    assert "vllm.engine_args.enable_chunked_prefil" in str(err.value)


def test_the_host_refuses_what_the_harness_sets_and_keeps_old_hashes() -> None:
    with pytest.raises(ValidationError, match=r"set vllm\.max_num_seqs instead"):
        ExperimentConfig(model="m", backend="vllm", vllm={"engine_args": {"max_num_seqs": 4}})
    with pytest.raises(ValidationError, match="set max_output_tokens instead"):
        ExperimentConfig(
            model="m", backend="pytorch", pytorch={"engine_args": {"max_new_tokens": 3}}
        )
    with pytest.raises(ValidationError, match="the harness sets it"):
        ExperimentConfig(model="m", backend="pytorch", pytorch={"engine_args": {"streamer": 1}})
    plain = ExperimentConfig(model="m", backend="vllm")
    empty = ExperimentConfig(model="m", backend="vllm", vllm={"engine_args": {}})
    assert plain.config_hash() == empty.config_hash()
    assert "engine_args" not in plain.canonical()["vllm"]
    chunked = ExperimentConfig(
        model="m", backend="vllm", vllm={"engine_args": {"enable_chunked_prefill": True}}
    )
    assert chunked.config_hash() != plain.config_hash()
    assert parse_axis_key("vllm.engine_args.enable_chunked_prefill") == (
        "vllm", ("vllm", "engine_args", "enable_chunked_prefill"),
    )  # fmt: skip


def test_a_real_run_passes_them_on_and_an_unknown_key_is_a_config_error(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    args = {"num_hidden_layers": 1, "output_scores": False}  # the model's config; generate
    write_request(ok, pytorch={"engine_args": args, "cache_implementation": "dynamic"})
    assert run_experiment(ok) == 0, (ok / "error.json").read_text()
    res = ExperimentResult.model_validate_json((ok / "result.json").read_text())
    assert res.backend_details["engine_args"] == args
    assert res.backend_details["config_overrides"] == ["num_hidden_layers"]
    assert res.flops is not None and res.flops.total is None
    assert "num_hidden_layers" in (res.flops.unavailable_reason or "")
    bad = tmp_path / "bad"
    write_request(bad, pytorch={"engine_args": {"num_hiden_layers": 1}})
    assert run_experiment(bad) == 2
    err = json.loads((bad / "error.json").read_text())
    assert err["phase"] == "config" and "nearest: num_hidden_layers" in err["message"]


def test_a_vocabulary_id_is_not_taken_for_a_credential() -> None:
    """engine_args keys such as eos_token_id hold ids; hf_token still holds a secret."""
    from llem_docker.config.secrets import key_looks_secret

    assert not key_looks_secret("eos_token_id") and not key_looks_secret("pad_token_id")
    assert key_looks_secret("hf_token") and key_looks_secret("token")
    assert key_looks_secret("api_key") and key_looks_secret("engine_secret")


def test_natural_lengths_end_at_eos_and_fixed_ones_do_not(tmp_path: Path) -> None:
    """Every id of the tiny model's vocabulary made an EOS: a natural response ends after its
    first token. A fixed one runs to max_output_tokens."""
    every_id = {"eos_token_id": list(range(1024))}
    results: dict[str, ExperimentResult] = {}
    for mode, args in (("natural", every_id), ("fixed", {})):
        run = tmp_path / mode
        options = {"engine_args": args, "cache_implementation": "dynamic"}
        write_request(run, output_length=mode, pytorch=options)
        assert run_experiment(run) == 0, (run / "error.json").read_text()
        results[mode] = ExperimentResult.model_validate_json((run / "result.json").read_text())
    nat, fix = results["natural"], results["fixed"]
    assert nat.tokens.output == 4 and fix.tokens.output == 4 * 8
    assert nat.responses is not None and nat.responses.output_tokens is not None
    assert nat.responses.output_tokens.mean == 1 and nat.responses.count == 4
    assert fix.responses is not None and fix.responses.output_tokens is not None
    assert fix.responses.output_tokens.mean == 8 and fix.responses.file == "responses.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "natural" / "responses.parquet").to_pydict()
    assert table["output_tokens"] == [1, 1, 1, 1] and table["prompt_tokens"] == [16] * 4
    assert nat.flops is not None and "natural" in (nat.flops.unavailable_reason or "")
    assert fix.flops is not None and fix.flops.total  # counted for fixed lengths
    assert nat.responses.energy_per_response_j is None and nat.responses.unavailable_reason
    assert nat.phases is not None and nat.phases.decode.unavailable_reason  # 1 token: no decode
