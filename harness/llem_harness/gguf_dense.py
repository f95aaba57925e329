"""A GGUF checkpoint as dense weights: how every engine here runs one.

transformers reads a GGUF file (gguf_model.py) and either unpacks its blocks into dense
weights in the study's precision or, where its GGUF kernels are installed, keeps them packed.
Runs always ask for the unpacking (`dense_kwargs`), so that a GGUF model computes the same way
in every engine and on every machine, and a study's `precision` and `quantization` mean what
they mean for any other checkpoint; result.json says so (`weights_file.loaded_as`).

Engines that load a Hugging Face folder rather than a GGUF file (vLLM: its CPU build has no
GGUF loader, docs/backends.md) get one from `dense_folder`: the unpacked model saved as
safetensors with its config and tokenizer (the chat template included), made once per file
and dtype under the persistent engine cache ($LLEM_ENGINE_CACHE/gguf-dense/, mounted into
every container) and reused by every later run; without that cache, in a temporary folder.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

from llem_harness.cache_folders import cache_root, made_once
from llem_harness.gguf_model import check_file, describe, locate, sha256
from llem_harness.models import ModelNotFoundError
from llem_harness.termination import communicate

DENSE_DIR = "gguf-dense"  # under $LLEM_ENGINE_CACHE


def loaded_as(dtype: str) -> str:
    """result.json's `weights_file.loaded_as` for a run in torch dtype `dtype`."""
    return f"dense {dtype}: unpacked from the GGUF blocks by transformers at load"


def loadable(model: str) -> Path:
    """The GGUF file of `model`, checked before any weight loads: a GGUF file (gguf_model.py)
    of an architecture this transformers reads. Raises ModelNotFoundError naming the file,
    its architecture and what loads."""
    path = locate(model)
    if (problem := check_file(path)) is not None:
        raise ModelNotFoundError(f"model `{model}`: {problem}")
    try:
        import transformers
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    except ImportError:  # a transformers without the table: its own loader says it
        return path
    arch = describe(path).architecture
    known = [a for a in GGUF_CONFIG_MAPPING if a not in ("general", "tokenizer")]
    # llama.cpp's names that transformers renames (qwen2moe, gpt-oss, t5encoder, ...)
    names = {arch, (arch or "").replace("-", "_"), (arch or "").replace("moe", "_moe")}
    names |= {"t5"} if "t5" in (arch or "") else set()
    if arch is not None and not names & set(known):
        raise ModelNotFoundError(
            f"model `{model}`: {path.name} is a GGUF of architecture `{arch}`, which "
            f"transformers {transformers.__version__} cannot load (it loads {', '.join(known)}); "
            "use a checkpoint of one of those in `model`"
        )
    return path


def dense_kwargs() -> dict[str, Any]:
    """`from_pretrained`'s arguments that unpack a GGUF file into dense weights. A transformers
    that can keep the blocks packed takes `GgufConfig(dequantize=True)`; an older one always
    unpacks and takes nothing."""
    import transformers

    config = getattr(transformers, "GgufConfig", None)
    return {} if config is None else {"quantization_config": config(dequantize=True)}


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256(Path(path))


def file_digest(path: Path) -> str:
    """The file's SHA-256, computed once per process for an unchanged file."""
    st = path.stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


def unpack(gguf: Path, dtype: str, out: Path) -> None:
    """Write the GGUF file's model, unpacked into torch dtype `dtype`, to the folder `out`, in
    a child process: the harness process then starts the engine (vLLM forks its engine core
    from it) without having loaded a model, its threads or its allocator state. A run on an
    H100 whose harness unpacked in-process hung as vLLM's engine core started; the same
    folder, already made, loaded in 38 s."""
    cmd = [sys.executable, "-m", "llem_harness.gguf_dense", str(gguf), dtype, str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, stderr = communicate(proc)
    if proc.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise RuntimeError(
            f"unpacking {gguf.name} into {dtype} failed (exit {proc.returncode}):\n"
            + "\n".join(tail)
        )


def unpack_here(gguf: Path, dtype: str, out: Path) -> None:
    """`unpack`'s work, in this process (the child's)."""
    import torch
    import transformers

    where: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), dtype=getattr(torch, dtype), **where, **dense_kwargs()
    )
    model.save_pretrained(str(out))
    transformers.AutoTokenizer.from_pretrained(str(gguf.parent), **where).save_pretrained(str(out))


def dense_folder(model: str, dtype: str) -> tuple[Path, str | None]:
    """(a Hugging Face folder of the GGUF `model` in `dtype`, a temporary folder for the caller
    to remove or None): made once under $LLEM_ENGINE_CACHE/gguf-dense/, else temporary."""
    path = loadable(model)
    name = f"{file_digest(path)[:16]}-{dtype}"
    return made_once(cache_root(DENSE_DIR), lambda out: unpack(path, dtype, out), name)


if __name__ == "__main__":  # python -m llem_harness.gguf_dense GGUF DTYPE OUT (`unpack`)
    unpack_here(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
