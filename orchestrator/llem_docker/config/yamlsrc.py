"""YAML loading that keeps line numbers, so errors can point into the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llem_docker.errors import ConfigError

Key = tuple[str | int, ...]


@dataclass
class Document:
    """Parsed YAML plus the 1-based line of every key path."""

    path: Path
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, key: Key) -> int | None:
        """Line of `key`, or of its nearest ancestor that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None


def format_key(key: Key) -> str:
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# Bounds that no real study or user config comes near; hostile files are refused at once
# (a "billion laughs" alias bomb, a deeply nested or huge document) instead of hanging.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 10_000  # after alias expansion

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Document:
    """Read and parse a YAML file, refusing anything a config file cannot sensibly be."""
    text = _read_text(path)
    try:
        first_alias = _check_events(path, text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expanded_size(path, node, first_alias)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "document" in problem:  # "but found another document" / "expected a single …"
            raise ConfigError(
                "the file holds more than one YAML document",
                source=path,
                line=line,
                fix="keep one YAML document: remove the `---` line and what follows, or merge it",
            ) from None
        raise ConfigError(
            f"malformed YAML: {problem}",
            source=path,
            line=line,
            fix="correct the YAML syntax at that line (indentation, colons, brackets)",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", source=path) from None
    doc = Document(path=path, data=data)
    if node is not None:
        _walk(node, (), doc)
    return doc


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise ConfigError(
            "is a directory, not a YAML file",
            source=path,
            fix="pass the file itself, e.g. examples/quickstart.yaml",
        )
    try:
        with path.open("rb") as fh:  # bounded read: also safe on a FIFO or /dev/zero
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", source=path, fix="check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror or exc})", source=path) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; a study or config file "
            "is a few kB of YAML",
            source=path,
            fix="check that this is the right file; keep prompt sets in a dataset file",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            source=path,
            line=line,
            fix="save the file as UTF-8",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(
            "binary content (a NUL byte)", source=path, line=line, fix="pass a YAML text file"
        )
    return text


def _check_events(path: Path, text: str) -> int | None:
    """Check the nesting depth on the parser's event stream (which does not recurse), and
    return the line of the first alias, if any."""
    depth, first_alias = 0, None
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) and first_alias is None:
            first_alias = _line(event.start_mark)
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"nested more than {MAX_DEPTH} levels deep",
                    source=path,
                    line=_line(event.start_mark),
                    fix="a study file needs a few levels; flatten the document",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return first_alias


def _line(mark: Any) -> int | None:
    return None if mark is None else int(mark.line) + 1


def _check_expanded_size(path: Path, root: yaml.Node, first_alias: int | None) -> None:
    """Refuse documents whose aliases expand them past MAX_NODES, or refer to themselves.

    Aliases share nodes in the composed graph; every later walk copies them. The expanded
    size is counted over the graph with memoisation, so it costs the graph's size."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                line = first_alias or node.start_mark.line + 1
                raise ConfigError(
                    f"the document expands to more than {MAX_NODES:,} values through YAML "
                    "aliases and anchors (`*name` / `&name`)",
                    source=path,
                    line=line,
                    fix="write the values out, or use fewer aliases; a study file is small",
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(
                "a YAML alias refers to the node that contains it (a recursive anchor)",
                source=path,
                line=node.start_mark.line + 1,
                fix="remove the recursive `*alias`",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _walk(node: yaml.Node, key: Key, doc: Document) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k_node, v_node in node.value:
            name = str(k_node.value)
            child = (*key, name)
            if name in seen:
                raise ConfigError(
                    "duplicate key",
                    source=doc.path,
                    key=format_key(child),
                    line=k_node.start_mark.line + 1,
                    fix="keep only one of them",
                )
            seen.add(name)
            doc.lines[child] = k_node.start_mark.line + 1
            _walk(v_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*key, i)
            doc.lines[child] = item.start_mark.line + 1
            _walk(item, child, doc)
