"""Where in the YAML a finding is: positions of paths, YAML and schema errors as diagnostics."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from menus.errors import Diagnostic, Level
from menus.nodes import Path_


class Locator:
    """Finds the line and column of a path in the YAML document."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def find(self, path: Path_, *, key: bool = False) -> tuple[int, int, Path_]:
        """1-based (line, col) of the deepest part of ``path`` present, and the parts found.

        A scalar's position is its value's, unless ``key`` asks for the key's.
        """
        current = self.doc
        line, col = 0, 0
        found: list[str | int] = []
        for part in path:
            if isinstance(current, CommentedMap) and part in current:
                value = current[part]
                is_scalar = not isinstance(value, CommentedMap | CommentedSeq)
                at_value = is_scalar and not (key and part == path[-1])
                line, col = current.lc.value(part) if at_value else current.lc.key(part)
                current = value
            elif isinstance(current, CommentedSeq) and isinstance(part, int):
                if part >= len(current):
                    break
                line, col = current.lc.item(part)
                current = current[part]
            else:
                continue  # a pydantic union tag or a missing field: stay where we are
            found.append(part)
        return line + 1, col + 1, tuple(found)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Checker:
    """Collects diagnostics for one file."""

    def __init__(self, file: str, locator: Locator) -> None:
        self.file = file
        self.locator = locator
        self.diagnostics: list[Diagnostic] = []

    def report(self, path: Path_, message: str, level: Level = "error") -> None:
        """Record a finding at ``path``; a path under ``nodes`` names its node."""
        line, col, _found = self.locator.find(path)
        node = str(path[1]) if len(path) > 1 and path[0] == "nodes" else None
        self.diagnostics.append(Diagnostic(self.file, line, col, level, message, node))


def read_yaml(text: str, checker: Checker) -> Any:
    """The document of ``text`` with positions, or None after reporting why it is not YAML."""
    yaml = YAML(typ="rt")  # round-trip: keeps line/column; builds only plain data types
    try:
        return yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = err.problem or err.context or "invalid YAML"
        checker.diagnostics.append(
            Diagnostic(checker.file, line, col, "error", f"bad YAML: {problem}")
        )
    except YAMLError as err:
        checker.diagnostics.append(Diagnostic(checker.file, 1, 1, "error", f"bad YAML: {err}"))
    return None


def schema_errors(err: ValidationError, checker: Checker) -> None:
    """Report pydantic's errors at their YAML positions, in the menu designer's words."""
    for error in err.errors():
        loc = tuple(error["loc"])
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "kind")
        extra = error["type"] == "extra_forbidden"
        line, col, found = checker.locator.find(loc, key=extra)
        node = str(found[1]) if len(found) > 1 and found[0] == "nodes" else None
        inner = found[2:] if node else found
        field = _dotted(inner)
        if extra:
            message = f"unknown field '{loc[-1]}'"
            if field.endswith(str(loc[-1])):
                field = field[: -len(str(loc[-1]))].rstrip(".")
        elif error["type"] == "missing":
            message = f"missing field '{loc[-1]}'"
        else:
            message = str(error["msg"])
        where = f"{field}: " if field else ""
        checker.diagnostics.append(
            Diagnostic(checker.file, line, col, "error", where + message, node)
        )
