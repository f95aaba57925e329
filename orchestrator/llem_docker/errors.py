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
            head += f"`{self.key}`: "
        text = head + self.message.rstrip(".") + "."
        if self.fix:
            text += f" Fix: {self.fix.rstrip('.')}."
        return text
