"""User-facing errors: one paragraph naming the file, the key path and the fix."""

from __future__ import annotations

from pathlib import Path


class LlemError(Exception):
    """An error the CLI reports without a traceback."""

    exit_code = 1

    def render(self) -> str:
        return str(self)


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
