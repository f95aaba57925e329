"""A GGUF model unpacked into a Hugging Face folder (llem_harness.gguf_dense): made once per
file and dtype under the engine cache, shared by later runs, temporary without a cache, and
nothing left half-made. The unpacking itself is stood in for here; tests/integration's
test_real_weights.py unpacks the real model, and tests/docker's runs it through vLLM."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from llem_harness import gguf_dense
from llem_harness.gguf_dense import DENSE_DIR, dense_folder, loadable, loaded_as
from llem_harness.models import ModelNotFoundError


@pytest.fixture
def model(tmp_path: Path) -> str:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 272, 20) + b"\0" * 64)
    return str(path)


@pytest.fixture
def unpacked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    made: list[tuple[Path, str]] = []

    def unpack(gguf: Path, dtype: str, out: Path) -> None:
        made.append((gguf, dtype))
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf_dense, "unpack", unpack)
    return made


def test_the_folder_is_made_once_per_file_and_dtype_under_the_engine_cache(
    tmp_path: Path, model: str, unpacked: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(tmp_path / "engines"))
    first, tmp = dense_folder(model, "bfloat16")
    again, tmp2 = dense_folder(model, "bfloat16")
    other, _ = dense_folder(model, "float16")
    assert tmp is None and tmp2 is None and first == again != other
    assert first.parent == tmp_path / "engines" / DENSE_DIR and first.name.endswith("-bfloat16")
    assert [d for _, d in unpacked] == ["bfloat16", "float16"]
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".staging-")]


def test_without_an_engine_cache_the_folder_is_temporary(
    model: str, unpacked: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLEM_ENGINE_CACHE", raising=False)
    folder, tmp = dense_folder(model, "float32")
    assert tmp == str(folder) and (folder / "config.json").is_file()


def test_a_failed_unpacking_leaves_nothing_behind(
    tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(gguf: Path, dtype: str, out: Path) -> None:
        (out / "half.safetensors").write_text("x")
        raise RuntimeError("unsupported architecture")

    monkeypatch.setattr(gguf_dense, "unpack", broken)
    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(tmp_path / "engines"))
    with pytest.raises(RuntimeError, match="unsupported architecture"):
        dense_folder(model, "bfloat16")
    assert list((tmp_path / "engines" / DENSE_DIR).iterdir()) == []


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        dense_folder(str(tmp_path / "gone.gguf"), "bfloat16")
    assert loaded_as("bfloat16").startswith("dense bfloat16")


def test_an_architecture_transformers_cannot_load_is_refused_before_any_weight_loads(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")  # the image's check; the host has no transformers
    from llem_harness.gguf_model import WeightsFile

    def fake(path: Path) -> WeightsFile:
        return WeightsFile(file=path.name, sha256="0" * 64, architecture="rwkv7")

    monkeypatch.setattr(gguf_dense, "describe", fake)
    with pytest.raises(ModelNotFoundError, match=r"architecture `rwkv7`, which transformers"):
        loadable(model)
    monkeypatch.setattr(gguf_dense, "describe", lambda p: fake(p).model_copy(
        update={"architecture": "llama"}))  # fmt: skip
    assert str(loadable(model)) == model


def test_the_unpacking_runs_in_a_child_process_whose_failure_is_told(
    tmp_path: Path, model: str
) -> None:
    """The harness process never loads the model itself (gguf_dense.unpack); a child that
    fails (here: a header with no tensors behind it) ends the run with the child's last lines."""
    pytest.importorskip("transformers")
    with pytest.raises(RuntimeError, match=r"unpacking m.gguf into bfloat16 failed \(exit"):
        gguf_dense.unpack(Path(model), "bfloat16", tmp_path / "out")
