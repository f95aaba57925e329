"""`make lint`'s engine-name check: an engine is named only in its own package, the registry and
the images.

Every engine's name (the registry's, `llem_harness.backends.ENGINES`) is looked for in the code
of both packages: identifiers (names, attributes, definitions, arguments, imports; any part of
one) and string constants. Prose is not code: docstrings and comments may name an engine as an
example, and a line that ends in `# not an engine` names something else (a library's own
option value that happens to be spelled so). Allowed: the engine's own package
(`harness/llem_harness/backends/<name>/`) and the registry (`backends/__init__.py`). Exit 1
lists each place as `path:line: name`.

    python tools/engine_names.py [ROOT ...]    (default: the two packages)
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (REPO / "harness" / "llem_harness", REPO / "orchestrator" / "llem_docker")
BACKENDS = REPO / "harness" / "llem_harness" / "backends"
REGISTRY = BACKENDS / "__init__.py"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are docstrings."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _words(node: ast.AST) -> Iterator[tuple[str, bool]]:
    """(text, is_identifier) of one node."""
    if isinstance(node, ast.Name):
        yield node.id, True
    elif isinstance(node, ast.Attribute):
        yield node.attr, True
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name, True
    elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
        yield str(node.arg), True
    elif isinstance(node, ast.alias):
        yield node.name, True
        if node.asname:
            yield node.asname, True
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module, True
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value, False


def violations(path: Path, names: list[str]) -> Iterator[str]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    lines, docs = source.splitlines(), _docstrings(tree)
    word = {n: re.compile(rf"(?<![a-z0-9]){re.escape(n)}(?![a-z])") for n in names}
    for node in ast.walk(tree):
        if id(node) in docs:
            continue
        line = getattr(node, "lineno", 0)
        if line and lines[line - 1].rstrip().endswith("# not an engine"):
            continue
        for text, ident in _words(node):
            low = text.lower()
            for name in names:
                if (name in low) if ident else word[name].search(low):
                    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                    yield f"{where}:{line}: {name}"


def allowed(path: Path, name: str) -> bool:
    return path == REGISTRY or path.is_relative_to(BACKENDS / name)


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(REPO / "harness")]
    from llem_harness.backends import ENGINES

    names = sorted(ENGINES)
    roots = [Path(a).resolve() for a in argv] or list(PACKAGES)
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            for line in violations(path, names):
                if not allowed(path, line.rsplit(": ", 1)[1]):
                    found.append(line)
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} place(s) name an engine outside its package and the registry: read "
            "it from the registry (llem_harness.backends: ENGINES, engine(name)) instead",
            file=sys.stderr,
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
