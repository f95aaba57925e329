"""Stand-ins for tools CI cannot install (apptainer)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def install_apptainer(bin_dir: Path) -> Path:
    """Put executable `apptainer` and `singularity` stand-ins into `bin_dir`; return it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    body = (HERE / "apptainer.py").read_text()
    for name in ("apptainer", "singularity"):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    return bin_dir


def write_sif(path: Path, labels: dict[str, str]) -> Path:
    """A stand-in image: the labels `apptainer inspect` will report."""
    import json

    path.write_text(json.dumps({"labels": labels}))
    return path
