"""Pack the vLLM wheels for the lent GPU machine into fewer device calls, and check the pack.

The device refuses a call whose working tree plus carried folders exceed 64 MiB, so the
vLLM 0.25.0 wheels (310 MB, `../shared/gpu/prepare-vllm-wheels.sh`) travel in parts, one
call each. Wheels are zip files compressed with deflate; stored uncompressed and then
compressed with xz as one stream they come to about a quarter less, in chunks sized to what
the tree leaves free, so a lease spends fewer calls copying them.

    python bench/gpu_bundle.py pack      # .v1a/ ... .v6/ (and .v7/) -> .b1/ ... .bN/
    python bench/gpu_bundle.py verify    # join, decompress, compare every wheel's members

Each wheel keeps its name and every member's bytes; only the zip compression changes, so
pip installs the same files (`bench/h200_vllm_session.sh unpack` does it on the device:
`chunk K` calls first, the last chunk carried with `bench` or `install`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

LIMIT = 64 * 2**20  # the device's cap on tree plus carry, per call
MARGIN = 3 * 2**20  # room for the tree to grow before the chunks must be made again
ROOT = Path(__file__).resolve().parent.parent


def tree_bytes(root: Path) -> int:
    """Bytes the device copies for the working tree: tracked plus untracked, not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sum((root / p).stat().st_size for p in out.split("\0") if p and (root / p).is_file())


def original_tar(root: Path) -> bytes:
    """The parts joined as the device joins them (`cat /tmp/vch/vpart.*`: sorted by name)."""
    parts: list[Path] = []
    for k in range(1, 7):  # part K whole (.vK/) where it is here, else its halves (.vKa/, .vKb/)
        whole = sorted((root / f".v{k}").glob("vpart.*"))
        halves = sorted(root.glob(f".v{k}[ab]/vpart.*"), key=lambda p: p.name)
        if not (whole or len(halves) == 2):
            raise SystemExit(
                f"part {k} of the vLLM wheels is missing: .v{k}/, or .v{k}a/ and .v{k}b/"
            )
        parts += whole or halves
    return b"".join(p.read_bytes() for p in parts)


def stored_copy(wheel: Path, dest: Path) -> None:
    """The same wheel with every member stored, not deflated (xz compresses it better)."""
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, info.date_time)
            out.external_attr = info.external_attr
            zout.writestr(out, zin.read(info))


def stage(root: Path, work: Path) -> Path:
    """The wheels to ship, stored: vLLM's at the top, part 7's (.v7/) under extra/."""
    src, top = work / "src", work / "stage"
    (top / "extra").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(original_tar(root))) as tar:
        tar.extractall(src, filter="data")
    for wheel in sorted(src.glob("*.whl")):
        stored_copy(wheel, top / wheel.name)
    for wheel in sorted((root / ".v7").glob("*.whl")):
        stored_copy(wheel, top / "extra" / wheel.name)
    return top


def pack(root: Path, chunk: int | None) -> None:
    size = chunk or LIMIT - tree_bytes(root) - MARGIN - sum(
        p.stat().st_size for p in (root / ".whl").glob("*")
    )
    with tempfile.TemporaryDirectory() as tmp:
        top = stage(root, Path(tmp))
        tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(top), "."], stdout=subprocess.PIPE)
        blob = subprocess.run(
            ["xz", "-9", "-T0", "-c"], stdin=tar.stdout, check=True, capture_output=True
        ).stdout
        if tar.wait() != 0:
            raise SystemExit("tar failed")
    for old in root.glob(".b[0-9]*"):
        shutil.rmtree(old)
    count = -(-len(blob) // size)
    for i in range(count):
        folder = root / f".b{i + 1}"
        folder.mkdir()
        (folder / f"bpart.{i:02d}").write_bytes(blob[i * size : (i + 1) * size])
    digest = hashlib.sha256(blob).hexdigest()
    (root / f".b{count}" / "bundle.sha256").write_text(f"{digest} {count}\n")
    print(
        f"{len(blob) / 1e6:.1f} MB in {count} chunks of at most {size / 2**20:.1f} MiB: "
        f"{', '.join(f'.b{i + 1}' for i in range(count))} (the last one holds bundle.sha256)"
    )


def members(wheel: zipfile.ZipFile) -> dict[str, bytes]:
    return {i.filename: hashlib.sha256(wheel.read(i)).digest() for i in wheel.infolist()}


def verify(root: Path) -> None:
    chunks = sorted(root.glob(".b[0-9]*/bpart.*"), key=lambda p: p.name)
    digest, count = next(root.glob(".b[0-9]*/bundle.sha256")).read_text().split()
    blob = b"".join(p.read_bytes() for p in chunks)
    assert len(chunks) == int(count), f"{len(chunks)} chunks, bundle.sha256 says {count}"
    assert hashlib.sha256(blob).hexdigest() == digest, "the chunks do not join to the bundle"
    raw = subprocess.run(["xz", "-dc"], input=blob, check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        got = Path(tmp) / "got"
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            tar.extractall(got, filter="data")
        with tarfile.open(fileobj=io.BytesIO(original_tar(root))) as tar:
            tar.extractall(Path(tmp) / "want", filter="data")
        want = sorted((Path(tmp) / "want").glob("*.whl")) + sorted((root / ".v7").glob("*.whl"))
        for wheel in want:
            mine = got / ("extra" if wheel.parent.name == ".v7" else "") / wheel.name
            with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(mine) as b:
                assert members(a) == members(b), f"{wheel.name}: members differ"
        print(f"ok: {len(want)} wheels, every member the same bytes, from {len(chunks)} chunks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "verify"])
    parser.add_argument(
        "--chunk-mib", type=float, help="chunk size (default: what the tree leaves)"
    )
    args = parser.parse_args()
    if args.action == "pack":
        pack(ROOT, int(args.chunk_mib * 2**20) if args.chunk_mib else None)
    else:
        verify(ROOT)


if __name__ == "__main__":
    main()
