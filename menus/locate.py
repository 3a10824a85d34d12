"""Where in the YAML a finding is: positions, YAML and schema errors as diagnostics, and
the file with its refused nodes set aside, so the other checks still run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from menus.errors import Diagnostic, Level
from menus.model import MenuFile
from menus.nodes import Path_

try:  # the fast reader; without it every file is read by ruamel.yaml alone
    import yaml_rs
except ImportError:  # pragma: no cover
    yaml_rs = None  # type: ignore[assignment]


# What the fast reader (yaml_rs) reads differently from ruamel.yaml, or not at
# all: tags, merge keys, timestamps and times, directives, tabs, a byte order
# mark. A file with any of them is read by ruamel.yaml alone, as before (so is
# a file of several documents: yaml_rs reads it as a list). The patterns may
# match where there is none (a "!" after a space in a text), which only costs
# time; each starts with a literal so that a large file is scanned in
# milliseconds.
_UNUSUAL = tuple(
    re.compile(pattern)
    for pattern in (
        r"!(?<=[\s\[{,]!)",
        "<<",
        r":\d\d:\d\d",
        r"-\d\d?-\d\d?",
        r"\n%",
        "[\t\ufeff]",
    )
)


def _unusual(text: str) -> bool:
    return text.startswith(("!", "%")) or any(p.search(text) for p in _UNUSUAL)


class Document(dict[Any, Any]):
    """A YAML mapping read without positions, with its source to find them later."""

    def __init__(self, data: Mapping[Any, Any], source: str) -> None:
        super().__init__(data)
        self.source = source


class Locator:
    """Finds the line and column of a path in the YAML document.

    A ``Document`` (read fast, without positions) is read again with positions
    the first time a finding needs one: a file without findings is read once.
    """

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def _positioned(self) -> Any:
        if isinstance(self.doc, Document):
            try:
                self.doc = _round_trip().load(self.doc.source)
            except YAMLError:  # read by one reader, refused by the other: no positions
                self.doc = None
        return self.doc

    def find(self, path: Path_, *, key: bool = False) -> tuple[int, int, Path_]:
        """1-based (line, col) of the deepest part of ``path`` present, and the parts found.

        A scalar's position is its value's, unless ``key`` asks for the key's.
        """
        current = self._positioned()
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


def _round_trip() -> YAML:
    return YAML(typ="rt")  # round-trip: keeps line/column; builds only plain data types


def read_yaml(text: str, checker: Checker) -> Any:
    """The document of ``text``, or None after reporting why it is not YAML.

    A plain mapping is read by yaml_rs (Rust: a 10,000-node menu in a fraction
    of a second, where ruamel.yaml's round trip takes most of a minute) as a
    ``Document``; ruamel.yaml reads anything else, and any text yaml_rs
    refuses, so errors keep ruamel.yaml's words and positions.
    """
    if yaml_rs is not None and not _unusual(text):
        try:
            fast = yaml_rs.loads(text, parse_datetime=False)
        except yaml_rs.YAMLDecodeError:
            fast = None
        if isinstance(fast, dict):
            return Document(fast, text)
    try:
        return _round_trip().load(text)
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


def without_refused_nodes(
    doc: Mapping[str, Any], err: ValidationError
) -> tuple[MenuFile, frozenset[str]] | None:
    """The file with each node the schema refused replaced by a placeholder.

    The rest can then be checked as well (targets, texts, operations), so one
    broken node does not hide every other finding. None when the file's own
    fields are broken (nothing else can be trusted).
    """
    refused: set[str] = set()
    for error in err.errors():
        loc = error["loc"]
        if len(loc) < 2 or loc[0] != "nodes":
            return None
        refused.add(str(loc[1]))
    nodes = doc.get("nodes")
    if not isinstance(nodes, Mapping):
        return None
    # A route to itself: no text, no operation, every target there.
    placeholders = {
        node_id: {
            "kind": "route",
            "routes": [{"when": "true", "target": node_id}],
            "default": node_id,
        }
        for node_id in refused
    }
    try:
        model = MenuFile.model_validate({**doc, "nodes": {**nodes, **placeholders}})
    except ValidationError:
        return None
    return model, frozenset(refused)
