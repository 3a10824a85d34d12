"""A tiny, safe expression language for conditions: no eval, no attribute access.

Grammar (case-sensitive keywords)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := atom (("==" | "!=" | "<" | "<=" | ">" | ">=") atom)?
    atom    := NUMBER | STRING | "true" | "false" | "null" | NAME ("." NAME)* | "(" expr ")"

Names read session variables (``points``) and operation results
(``subscriber.status``); a missing name is ``null``. Comparing values of
different kinds is false, never an error. Parsing happens once at load time
into closures; evaluation only looks up keys in plain dicts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from menus.limits import MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH

Scope = Mapping[str, Any]
Evaluator = Callable[[Scope], Any]


class ExpressionError(ValueError):
    """A condition that does not parse; ``position`` is the 0-based column in the source."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>'[^'\\]*'|"[^"\\]*")
      | (?P<op>==|!=|<=|>=|<|>|\(|\))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_LITERALS: Mapping[str, Any] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            rest = source[pos:]
            at = pos + len(rest) - len(rest.lstrip())
            raise ExpressionError(f"unexpected character {source[at]!r}", at)
        kind = match.lastgroup
        assert kind is not None
        text = match.group(kind)
        start = match.start(kind)
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        if kind == "name" and "__" in text:
            # Names are dictionary keys, never attributes; dunder names are refused outright.
            raise ExpressionError(f"name {text!r} is not allowed", start)
        tokens.append(_Token(kind, text, start))
        pos = match.end()
    return tokens


def lookup(scope: Scope, path: str) -> Any:
    """The value at a dotted ``path`` in nested mappings, or None when any part is missing."""
    value: Any = scope
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    if _kind(left) != _kind(right):
        # Equality across kinds is simply false; ordering across kinds is false too.
        return op is operator.ne
    try:
        return bool(op(left, right))
    except TypeError:
        return False


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ExpressionError("unexpected end of expression", len(self.source))
        self.index += 1
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in {"keyword", "op"} and token.text == text

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            token = self.peek()
            raise ExpressionError(
                f"expression nested deeper than {MAX_EXPRESSION_DEPTH}",
                token.pos if token else len(self.source),
            )

    def parse(self) -> Evaluator:
        result = self.parse_or()
        token = self.peek()
        if token is not None:
            raise ExpressionError(f"unexpected {token.text!r}", token.pos)
        return result

    def parse_or(self) -> Evaluator:
        parts = [self.parse_and()]
        while self.at("or"):
            self.take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda scope: any(bool(part(scope)) for part in parts)

    def parse_and(self) -> Evaluator:
        parts = [self.parse_not()]
        while self.at("and"):
            self.take()
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda scope: all(bool(part(scope)) for part in parts)

    def parse_not(self) -> Evaluator:
        if self.at("not"):
            self.take()
            self.nest()
            inner = self.parse_not()
            self.depth -= 1
            return lambda scope: not inner(scope)
        return self.parse_compare()

    def parse_compare(self) -> Evaluator:
        left = self.parse_atom()
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in _COMPARE:
            self.take()
            right = self.parse_atom()
            op = _COMPARE[token.text]
            return lambda scope: _compare(op, left(scope), right(scope))
        return left

    def parse_atom(self) -> Evaluator:
        token = self.take()
        if token.kind == "number":
            number: int | float = float(token.text) if "." in token.text else int(token.text)
            return lambda _scope: number
        if token.kind == "string":
            text = token.text[1:-1]
            return lambda _scope: text
        if token.kind == "keyword" and token.text in _LITERALS:
            literal = _LITERALS[token.text]
            return lambda _scope: literal
        if token.kind == "name":
            path = token.text
            return lambda scope: lookup(scope, path)
        if token.kind == "op" and token.text == "(":
            self.nest()
            inner = self.parse_or()
            self.depth -= 1
            closing = self.take()
            if closing.text != ")":
                raise ExpressionError(f"expected ')' but found {closing.text!r}", closing.pos)
            return inner
        raise ExpressionError(f"unexpected {token.text!r}", token.pos)


@dataclass(frozen=True)
class Expression:
    """A parsed condition; call ``evaluate(scope)`` for its truth value."""

    source: str
    names: frozenset[str]
    _evaluate: Evaluator

    def evaluate(self, scope: Scope) -> bool:
        """The truth of the expression over ``scope`` (nested mappings)."""
        return bool(self._evaluate(scope))


def parse(source: str) -> Expression:
    """Parse ``source`` once; raises ExpressionError with the column of the problem."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 0)
    if not source.strip():
        raise ExpressionError("empty expression", 0)
    parser = _Parser(source)
    evaluator = parser.parse()
    names = frozenset(t.text for t in parser.tokens if t.kind == "name")
    return Expression(source, names, evaluator)
