"""A pack read back (pack.py writes them): `is_pack` tells a pack from any other file,
`pack_info` reads its pack.json alone, and `read_pack` extracts it safely: no absolute paths,
no `..`, no links or special files, and never over an existing folder."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from llem_docker.errors import ConfigError
from llem_docker.review.pack import PACK_FILE, PackInfo


def _is_head(first: tarfile.TarInfo | None) -> bool:
    parts = PurePosixPath(first.name).parts if first is not None else ()
    return first is not None and first.isfile() and len(parts) == 2 and parts[1] == PACK_FILE


def is_pack(path: Path) -> bool:
    """Whether `path` is a pack: a .tar.gz whose first member is <top>/pack.json."""
    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:gz") as tar:
            return _is_head(tar.next())
    except (OSError, EOFError, tarfile.TarError):
        return False


def pack_info(path: Path) -> PackInfo:
    """A pack's pack.json, read without extracting the rest."""
    if not is_pack(path):
        raise _not_a_pack(path)
    with tarfile.open(path, "r:gz") as tar:
        first = tar.next()
        fh = tar.extractfile(first) if first is not None else None
        if fh is None:
            raise _not_a_pack(path)
        return PackInfo.model_validate_json(fh.read())


def _not_a_pack(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} is not an llem-docker pack (a .tar.gz with pack.json at its top)",
        source=str(path),
        fix="give a file `llem-docker pack` wrote",
    )


def _safe_top(members: list[tarfile.TarInfo], path: Path) -> str:
    """The one top folder of the members; refuses absolute paths, `..`, links, devices."""
    tops = set()
    for m in members:
        p = PurePosixPath(m.name)
        plain = m.isfile() or m.isdir()
        if p.is_absolute() or ".." in p.parts or "\\" in m.name or not plain:
            kind = "a path that leads outside its folder" if plain else "a link or special file"
            raise ConfigError(
                f"{path} holds {kind}: {m.name!r}; nothing was extracted",
                source=str(path),
                fix="use a pack `llem-docker pack` wrote, from a source you trust",
            )
        tops.add(p.parts[0] if p.parts else "")
    if len(tops) != 1 or "" in tops or "." in tops:
        raise _not_a_pack(path)
    return tops.pop()


def read_pack(path: Path, into: Path) -> Path:
    """Extract the pack at `path` into the folder `into` and return the study folder in it.
    Refuses a member with an absolute path, `..` or a link, and a study folder that exists."""
    if not is_pack(path):
        raise _not_a_pack(path)
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        dest = into / _safe_top(members, path)
        if dest.exists():
            raise ConfigError(
                f"{dest} exists already", source=str(into), fix="extract into another folder"
            )
        into.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: the standard library's checks too
            tar.extractall(into, members=members, filter="data")
        else:  # pragma: no cover - older 3.11; _safe_top has checked every member
            tar.extractall(into, members=members)
    return dest
