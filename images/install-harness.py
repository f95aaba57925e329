"""Install the harness into an engine image: the install stage of images/<backend>/Dockerfile.

    python3 install-harness.py --layer DIR [--engine] [--warm "MODULE ..."] \
        REQUIREMENT [PIP_ARGS ...]

The build context (this script and wheels/) is at /tmp/llem in the install stage, and stays
there: the Dockerfile's final stage copies only DIR, which holds the files this install added,
at their absolute paths, onto a fresh copy of the engine image. So no wheel, cache or script of
the build context reaches the image, and the harness is one layer.

With --engine, REQUIREMENT is a pinned part of the engine that the upstream image lacks (the
pytorch backend's transformers): it gets a layer of its own, below the harness's, and only the
warm-up imports are checked. The harness install that follows then finds it installed, so the
harness layer holds the harness and its own dependencies only.

Each layer lists what it holds in LAYERS/<name>.json (name "engine" or "harness"): the
distributions it added, with their versions, and its size. Provenance for the image, and what
tests/docker/test_images.py checks each layer against.

1. The engine stays as it is. Every package already installed is a pip constraint, so the
   engine's torch/CUDA stack (and everything else) cannot be replaced: a real conflict fails the
   build. An install that changed a package of the engine anyway fails it too, because DIR could
   not carry that change.
2. What no run needs stays behind (PRUNE): test suites, Cython and C++ sources and headers,
   pyarrow's Flight (RPC) and S3 libraries, and link-time copies of shared libraries.
3. Bytecode: the harness layer carries it for every module it installs (the harness and its
   own dependencies, a few MB), so that no run compiles them again: the containers run as an
   unknown user who cannot write bytecode into the image, and runs are told not to write it
   into their containers either (PYTHONDONTWRITEBYTECODE, which would otherwise leave each
   container dozens of files for the engine to delete). An engine layer gets none for the
   whole install (for transformers, that would be 69 MB, for 559 model families): only the
   modules named by --warm are imported once, so the ones a run imports start from .pyc.
4. The result is checked in place: `llem-harness --version`, and a timeseries file written by
   the harness's own Parquet writer (the image has no pyarrow to read it back). Then every file
   that appeared under the install's folders must be one DIR carries.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

WHEELS = "/tmp/llem/wheels"
PINS = "/tmp/llem/engine-pins.txt"
MARKER = "/tmp/llem/.install-started"
LAYERS = Path("/usr/local/share/llem-docker/layers")

# Paths of the installed packages' files (as their RECORD names them) that no run loads.
PRUNE = [
    re.compile(p)
    for p in (
        r"(^|/)tests/",  # test suites (numpy, pyarrow, ...)
        r"\.(pyx|pxd|pxi)$",  # Cython sources
        r"^pyarrow/(include|includes|src)/",  # C++ headers and sources, for building extensions
        r"^pyarrow/_pyarrow_cpp_tests\.",
        # Optional pyarrow modules with libraries of their own, which nothing loads unless it
        # imports them: Arrow Flight (RPC) and the S3 filesystem. The harness writes one local
        # Parquet file (pyarrow.fs imports the S3 module only if it is there).
        r"^pyarrow/[^/]*flight",
        r"^pyarrow/(libarrow_s3\.so|_s3fs\.)",
        # Link-time copies: a wheel cannot hold symlinks, so libX.so and libX.so.N.M.P are
        # copies of libX.so.N, the name that the extension modules load.
        r"^pyarrow/lib[a-z_]+\.so(\.\d+\.\d+\.\d+)?$",
    )
]

WARM = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # only costs start-up time: warn, do not fail the build
        print(f"warning: --warm {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
"""

CHECK = """
import tempfile
from pathlib import Path
import llem_harness.cli, llem_harness.run
from llem_harness.energy.base import Sample
from llem_harness.energy.timeseries import write_timeseries
with tempfile.TemporaryDirectory() as tmp:  # the harness's own Parquet writer (no pyarrow)
    path = Path(tmp) / "timeseries.parquet"
    rows = [Sample(0.5, 0, 100.0, 1.0, 40.0, 1.0, 50.0, 0)]
    assert write_timeseries(rows, path) == 1
    data = path.read_bytes()
    assert data[:4] == data[-4:] == b"PAR1" and len(data) > 100, "not a Parquet file"
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution pip sees."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {canonical(d["name"]): d["version"] for d in json.loads(out)}


def pinnable(version: str) -> bool:
    """A constraint pip can parse (some distro packages carry versions like 1.1build1)."""
    try:
        from pip._vendor.packaging.version import InvalidVersion, Version
    except ImportError:
        return True
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def write_pins(engine: dict[str, str]) -> None:
    with open(PINS, "w") as f:
        for name, version in sorted(engine.items()):
            if name not in ("pip", "setuptools", "wheel") and pinnable(version):
                f.write(f"{name}=={version}\n")


def added_files(names: list[str]) -> tuple[list[Path], list[Path], set[Path]]:
    """(files to keep, files pruned, folders they live in) of the distributions `names`."""
    keep: list[Path] = []
    pruned: list[Path] = []
    roots: set[Path] = set()
    for name in names:
        dist = md.distribution(name)
        if dist.files is None:
            sys.exit(f"error: {name} has no RECORD; cannot tell which files it installed")
        roots.add(Path(os.path.realpath(str(dist.locate_file("")))))
        for entry in dist.files:
            path = Path(os.path.realpath(str(dist.locate_file(entry))))
            if any(p.search(entry.as_posix()) for p in PRUNE):
                pruned.append(path)
            else:
                keep.append(path)
            if entry.as_posix().startswith(".."):  # outside site-packages: bin/ and the like
                roots.add(path.parent)
    return keep, pruned, roots


def with_bytecode(files: list[Path]) -> list[Path]:
    """`files` and the .pyc written for them (compiled, or by the check/warm-up import)."""
    out = [f for f in files if f.is_file()]
    for f in files:
        if f.suffix == ".py":
            pyc = Path(importlib.util.cache_from_source(str(f)))
            if pyc.is_file():
                out.append(pyc)
    return sorted(set(out))


def unaccounted(roots: set[Path], layer: set[Path]) -> list[Path]:
    """Files created since the install began under the install's folders that the layer does not
    carry (bytecode of the engine's own modules, which the import wrote, aside)."""
    since = os.stat(MARKER).st_ctime
    tops = [r for r in roots if not any(o != r and r.is_relative_to(o) for o in roots)]
    found = []
    for top in sorted(tops):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for n in filenames:
                p = Path(dirpath, n)
                if p not in layer and p.lstat().st_ctime >= since:
                    found.append(p)
    return found


def stage(files: list[Path], layer: Path) -> int:
    """Copy `files` under `layer` at their absolute paths; every folder on the way keeps the
    mode, owner and times it has in the image, since copying the layer onto the image applies
    them. Returns the bytes copied."""
    layer.mkdir(parents=True, exist_ok=True)
    shutil.copystat("/", layer)
    folders: set[Path] = set()
    total = 0
    for f in files:
        for folder in reversed(f.parents[:-1]):  # /opt, /opt/venv, ... (not / itself)
            if folder not in folders:
                dest = layer / folder.relative_to("/")
                dest.mkdir(exist_ok=True)
                st = folder.stat()
                os.chown(dest, st.st_uid, st.st_gid)
                folders.add(folder)
        dest = layer / f.relative_to("/")
        shutil.copy2(f, dest)
        st = f.stat()
        os.chown(dest, st.st_uid, st.st_gid)
        total += st.st_size
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        shutil.copystat(folder, layer / folder.relative_to("/"))
    return total


def record(layer: Path, name: str, packages: dict[str, str], files: int, size: int) -> None:
    """Write LAYERS/<name>.json into the layer (folders 0755, owned by root)."""
    path = layer / LAYERS.relative_to("/") / f"{name}.json"
    for folder in reversed(path.parents):
        if folder != layer and layer in folder.parents:
            folder.mkdir(mode=0o755, exist_ok=True)
    text = {"layer": name, "packages": packages, "files": files, "bytes": size}
    path.write_text(json.dumps(text, indent=1, sort_keys=True) + "\n")
    path.chmod(0o644)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", required=True, type=Path, help="where the added files go")
    parser.add_argument("--warm", default="", help="modules to import once, for their .pyc")
    parser.add_argument(
        "--engine", action="store_true", help="a pinned engine part, in a layer of its own"
    )
    parser.add_argument("requirement")
    parser.add_argument("pip_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    engine = installed()
    write_pins(engine)
    Path(MARKER).touch()
    env = {**os.environ, "PIP_BREAK_SYSTEM_PACKAGES": "1"}  # Ubuntu 24.04's system Python
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-compile"]
    cmd += ["--disable-pip-version-check", *args.pip_args, "--find-links", WHEELS]
    cmd += ["-c", PINS, args.requirement]
    subprocess.run(cmd, check=True, env=env)

    after = installed()
    changed = sorted(n for n in engine if after.get(n) != engine[n])
    if changed:
        sys.exit(f"error: installing the harness changed the engine's {', '.join(changed)}")
    added = sorted(n for n in after if n not in engine)
    keep, pruned, roots = added_files(added)
    pruned_bytes = sum(p.stat().st_size for p in pruned if p.is_file())
    for p in pruned:
        p.unlink(missing_ok=True)

    subprocess.run([sys.executable, "-c", WARM, *args.warm.split()], check=True, env=env)
    if not args.engine:
        subprocess.run([sys.executable, "-c", CHECK], check=True, env=env)
        harness = shutil.which("llem-harness")
        if harness is None:
            sys.exit("error: no llem-harness on PATH after the install")
        subprocess.run([harness, "--version"], check=True, env=env)

    if not args.engine:  # the harness and its own dependencies: all of their bytecode
        for f in keep:
            if f.suffix == ".py" and f.is_file():
                compileall.compile_file(str(f), quiet=2)
    files = with_bytecode(keep)
    stray = unaccounted(roots, set(files))
    if stray:
        listed = "\n  ".join(map(str, stray[:20]))
        sys.exit(f"error: the install wrote files outside its packages' RECORDs:\n  {listed}")
    size = stage(files, args.layer)
    name = "engine" if args.engine else "harness"
    record(args.layer, name, {n: after[n] for n in added}, len(files), size)
    print(
        f"{name} layer: {len(added)} packages, {len(files)} files, {size / 1e6:.1f} MB "
        f"({len(pruned)} files, {pruned_bytes / 1e6:.1f} MB left out)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
