"""User-facing errors: one paragraph naming the file, the key path and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


class LlemError(Exception):
    """An error the CLI reports without a traceback."""

    exit_code = 1

    def render(self) -> str:
        return str(self)


class DiskFull(LlemError):
    """The disk under the results folder filled up mid-study: what was written is kept (every
    write is atomic), and the message says how to finish once there is room."""

    exit_code = 1

    def __init__(self, exc: OSError, resume: str) -> None:
        where = exc.filename or "the results folder"
        super().__init__(
            f"the disk is full ({exc.strerror}) while writing {where}: the study stopped there, "
            f"and every run that had finished is recorded. Fix: free space on that disk (or move "
            f"output.results_dir), then finish the study with `{resume}`"
        )


class ConfigError(LlemError):
    """Bad input (study file, user config, env var, flag): exit code 2."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        key: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.source = str(source) if source is not None else None
        self.key = key
        self.line = line
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = self.source or "input"
        if self.line is not None:
            where += f", line {self.line}"
        head = f"{where}: "
        if self.key:
            key = self.key if len(self.key) <= 80 else f"{self.key[:79]}…"
            head += f"`{key}`: "
        text = head + self.message.rstrip(".") + "."
        if self.fix:
            fix = self.fix.rstrip(".")
            text += f" Fix: {fix}" + ("" if fix.endswith(("?", "!")) else ".")
        return text


class ConfigErrors(ConfigError):
    """Several problems in one input, reported together (each with its line, key and fix)."""

    def __init__(self, problems: list[ConfigError], *, more: bool = False) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        self.more = more
        first = self.problems[0]
        super().__init__(first.message, source=first.source, key=first.key, line=first.line)
        self.fix = first.fix

    def render(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        where = self.problems[0].source or "input"
        count = f"{len(self.problems)}{'+' if self.more else ''}"
        lines = [f"{where}: {count} problems"]
        for p in self.problems:
            text = p.render()
            lines.append(
                "  - " + (text[len(where) :].lstrip(",: ") if text.startswith(where) else text)
            )
        if self.more:
            lines.append(f"  … only the first {len(self.problems)} are shown")
        return "\n".join(lines)


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() for messages, cut short: a huge scalar must not flood the terminal."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def describe_error(err: ErrorDetails) -> tuple[str, str]:
    """Turn one pydantic error into (message, fix)."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown key", "remove it or correct its spelling"
    if kind == "missing":
        return "required key is missing", "add it"
    if kind == "literal_error":
        return (
            f"{short_repr(got)} is not allowed: {msg.lower()}",
            f"use one of {ctx.get('expected', '')}",
        )
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx and kind.startswith(("greater", "less")):
            return (
                f"{short_repr(got)} is out of range ({msg.lower()})",
                f"use a value {word} {ctx[bound]}",
            )
    if kind.endswith(("_type", "_parsing")):
        return (
            f"wrong type: {msg.lower()} (got {type(got).__name__} {short_repr(got)})",
            "write a value of the expected type",
        )
    if kind == "string_too_short":
        return "must not be empty", "give a non-empty value"
    return msg, "correct the value"
