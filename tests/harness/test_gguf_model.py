"""GGUF checkpoints as models (llem_harness.gguf_model): the file checks, where a model is
found, and the config's refusals. The real file's loading is tests/integration's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydantic import ValidationError

from llem_harness.config import ExperimentConfig
from llem_harness.gguf_model import MODELS_DIR, PACKAGED, check_file, is_gguf, locate

ALIAS = "llem/smollm2-135m-instruct"


def header(version: int = 3, tensors: int = 272, magic: bytes = b"GGUF") -> bytes:
    return magic + struct.pack("<IQQ", version, tensors, 20) + b"\0" * 64


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"PK\x03\x04 a zip", "is not a GGUF file"),
        (b"GGUF\x03\x00", "is truncated"),
        (header(version=1), "GGUF version 1"),
        (header(tensors=0), "holds no tensors"),
    ],
)
def test_a_file_that_is_not_a_loadable_gguf_is_refused(
    tmp_path: Path, body: bytes, why: str
) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(body)
    problem = check_file(path)
    assert problem is not None and why in problem and str(path) in problem


def test_a_good_header_passes_and_missing_files_say_so(tmp_path: Path) -> None:
    good = tmp_path / "m.gguf"
    good.write_bytes(header())
    assert check_file(good) is None
    assert "does not exist" in (check_file(tmp_path / "gone.gguf") or "")
    assert "is not a file" in (check_file(tmp_path) or "")


def test_where_a_model_is_found(tmp_path: Path) -> None:
    assert is_gguf(ALIAS) and is_gguf("models/x.GGUF") and not is_gguf("meta-llama/Llama-3.2-1B")
    name = PACKAGED[ALIAS].file_name
    assert locate(ALIAS, tmp_path) == tmp_path / MODELS_DIR / "llem--smollm2-135m-instruct" / name
    assert (
        locate("llem-models/local/ab/x.gguf", tmp_path) == tmp_path / "llem-models/local/ab/x.gguf"
    )
    assert locate("/abs/x.gguf", tmp_path) == Path("/abs/x.gguf")


def test_the_config_refuses_dummy_weights_and_engines_that_cannot_load_gguf() -> None:
    base = {"model": ALIAS, "backend": "pytorch"}
    assert ExperimentConfig.model_validate(base).weights == "pretrained"
    with pytest.raises(ValidationError, match="carries its weights; set weights: pretrained"):
        ExperimentConfig.model_validate(base | {"weights": "dummy"})
    assert ExperimentConfig.model_validate(base | {"backend": "vllm"}).backend == "vllm"
    with pytest.raises(ValidationError, match="does not load GGUF files here; use pytorch, vllm"):
        ExperimentConfig.model_validate(base | {"backend": "tensorrt"})
