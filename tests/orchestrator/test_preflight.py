"""The dry run as a full preflight (execution/preflight.py): every dataset line, a hub dataset
missing from the local cache, a local model path that is not there, and every size key past
its documented limit are refused before anything runs, each naming the file, the line or key,
and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_docker.errors import ConfigError
from llem_docker.execution.preflight import LIMITS, check_inputs
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from tests.conftest import REPO
from tests.orchestrator.cliutil import invoke


def refusal(tmp_path: Path, body: str, files: dict[str, bytes] | None = None) -> ConfigError:
    for name, data in (files or {}).items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "study.yaml"
    path.write_text("name: t\nmodel: llem/tiny-llama\nbackend: pytorch\n" + body)
    study = load_study(path)
    with pytest.raises(ConfigError) as err:
        check_inputs(plan_study(study), study, tmp_path / "hub")
    assert err.value.source == str(path)
    return err.value


GOOD = b'{"prompt": "a"}\n\n{"messages": [{"role": "user", "content": "b"}]}\n'


@pytest.mark.parametrize(
    ("data", "line", "why"),
    [
        (GOOD + b'{"prompt": \n', 4, "not JSON"),
        (GOOD + b'{"prompt": "\xff"}\n', 4, "not UTF-8 text"),
        (GOOD + b'{"question": "b"}\n', 4, "needs a non-empty `prompt`"),
        (b'["a list"]\n', 1, "needs a non-empty `prompt`"),
        (GOOD + b'{"prompt": ""}\n' + GOOD, 4, "needs a non-empty `prompt`"),
    ],
)
def test_every_dataset_line_is_read_and_the_first_bad_one_named(
    tmp_path: Path, data: bytes, line: int, why: str
) -> None:
    err = refusal(tmp_path, "dataset: d.jsonl\n", {"d.jsonl": data})
    assert err.key == "dataset" and f"d.jsonl, line {line}: {why}" in str(err)
    assert err.fix and "one JSON object" in err.fix


def test_a_good_dataset_passes_and_an_empty_or_missing_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(GOOD)
    study_path = tmp_path / "study.yaml"
    study_path.write_text("name: t\nmodel: llem/tiny-llama\nbackend: pytorch\ndataset: d.jsonl\n")
    study = load_study(study_path)
    check_inputs(plan_study(study), study, tmp_path / "hub")  # no error
    assert "no prompts" in str(refusal(tmp_path, "dataset: e.jsonl\n", {"e.jsonl": b"\n\n"}))
    missing = refusal(tmp_path, "dataset: nowhere.jsonl\n")
    assert "does not exist" in str(missing) and missing.key == "dataset"


def test_a_hub_dataset_must_be_in_the_local_cache(tmp_path: Path) -> None:
    err = refusal(tmp_path, "dataset: 'hf:someone/questions:test'\n")
    assert "not in the local Hugging Face cache" in str(err) and err.key == "dataset"
    assert err.fix and "huggingface-cli download --repo-type dataset someone/questions" in err.fix
    files = tmp_path / "hub" / "datasets--someone--questions" / "snapshots" / "abc" / "data"
    files.mkdir(parents=True)
    (files / "test-00000.jsonl").write_text('{"prompt": "q"}\n')
    study = load_study(tmp_path / "study.yaml")
    check_inputs(plan_study(study), study, tmp_path / "hub")  # found: no error


def test_a_local_model_path_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("name: t\nmodel: ./my-model\nbackend: pytorch\n")
    study = load_study(path)
    with pytest.raises(ConfigError) as err:
        check_inputs(plan_study(study), study, tmp_path / "hub")
    assert err.value.key == "model" and "nothing is there" in str(err.value)
    (tmp_path / "my-model").mkdir()
    check_inputs(plan_study(study), study, tmp_path / "hub")


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ("n_prompts: 3000000000\n", "n_prompts", "3,000,000,000"),
        ("max_output_tokens: 2000000\n", "max_output_tokens", "2,000,000"),
        ("max_input_tokens: 2000000\n", "max_input_tokens", "2,000,000"),
        ("n_prompts: 900000\nmax_input_tokens: 1000\nmax_output_tokens: 1000\n",
         "n_prompts", "1,800,000,000"),
        ("backend: vllm\nscenario: serving\nserving: {n_requests: 5000000}\n",
         "serving.n_requests", "5,000,000"),
        ("backend: vllm\nscenario: serving\nserving: {request_rate: 1000, duration_s: 90000}\n",
         "serving.duration_s", "90,000"),
        ("backend: vllm\nscenario: serving\nserving: {request_rate: 1000, duration_s: 3600}\n",
         "serving.duration_s", "3,600,000"),
        ("backend: vllm\nscenario: serving\nserving: {duration_s: 3600, slo: {ttft_ms: 9},"
         " search: {rate: [1, 1000]}}\n", "serving.duration_s", "3,600,000"),
    ],
)  # fmt: skip
def test_every_size_key_is_bounded_with_its_limit(
    tmp_path: Path, body: str, key: str, value: str
) -> None:
    body = body.replace("backend: vllm\n", "")
    head = "name: t\nmodel: llem/tiny-llama\nbackend: vllm\n" if "serving" in body else ""
    path = tmp_path / "study.yaml"
    path.write_text(head or "name: t\nmodel: llem/tiny-llama\nbackend: pytorch\n")
    path.write_text(path.read_text() + body)
    study = load_study(path)
    with pytest.raises(ConfigError) as err:
        check_inputs(plan_study(study), study, tmp_path / "hub")
    assert err.value.key == key and f"is {value}" in str(err.value)
    assert "above the limit" in str(err.value) and err.value.fix


def test_the_limits_are_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("Size limits") :]
    for limit in LIMITS:
        assert f"{limit.most:,.0f}" in section, limit


def test_the_dry_run_refuses_a_bad_dataset_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.jsonl").write_bytes(GOOD + b"{oops\n")
    path = tmp_path / "study.yaml"
    path.write_text("name: t\nmodel: llem/tiny-llama\nbackend: pytorch\ndataset: d.jsonl\n")
    r = invoke(capsys, monkeypatch, "run", str(path), "--dry-run", "--runner", "local")
    assert r.code == 2 and "d.jsonl, line 4: not JSON" in r.err and "Traceback" not in r.err
