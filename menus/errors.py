"""Errors of the menus package, and the diagnostics the validator reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding of the validator, printable as ``FILE:LINE:COL: level: message``."""

    file: str
    line: int
    col: int
    level: Level
    message: str
    node: str | None = None

    def __str__(self) -> str:
        where = f"node '{self.node}': " if self.node else ""
        return f"{self.file}:{self.line}:{self.col}: {self.level}: {where}{self.message}"


class MenuError(Exception):
    """A menu file that cannot be used; ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.level == "error"]
        first = str(errors[0]) if errors else "invalid menu"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


class UnknownVersionError(KeyError):
    """A session names a menu version this process never loaded."""


class UnknownTemplateError(KeyError):
    """An SMS template name that the menu file does not define."""
