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


def load_yaml(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=path, fix="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file ({exc})", source=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
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
