"""A session's state and the outcome of a hop; the values templates and operations read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from menus import limits
from menus.expr import lookup
from menus.fields import ArgValue, Channel
from menus.screen import Screen


@dataclass
class SessionState:
    """Where a session is: small and JSON-serialisable (``to_dict`` / ``from_dict``)."""

    version: str
    node: str
    language: str
    channel: Channel
    variables: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    timeouts: int = 0
    breadcrumb: list[str] = field(default_factory=list)
    page: int = 0
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A compact dict (short keys, defaults left out) for storage."""
        out: dict[str, Any] = {
            "v": self.version,
            "n": self.node,
            "l": self.language,
            "c": self.channel,
        }
        optional = {
            "x": self.variables,
            "f": self.failures,
            "t": self.timeouts,
            "b": self.breadcrumb,
            "p": self.page,
            "e": self.ended,
        }
        out.update({k: v for k, v in optional.items() if v})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """The state ``to_dict`` produced."""
        return cls(
            version=str(data["v"]),
            node=str(data["n"]),
            language=str(data["l"]),
            channel=cast(Channel, data["c"]),
            variables=dict(data.get("x", {})),
            failures=int(data.get("f", 0)),
            timeouts=int(data.get("t", 0)),
            breadcrumb=list(data.get("b", [])),
            page=int(data.get("p", 0)),
            ended=bool(data.get("e", False)),
        )

    def copy(self) -> SessionState:
        """A copy the engine may change without touching the caller's state."""
        return replace(self, variables=dict(self.variables), breadcrumb=list(self.breadcrumb))


@dataclass(frozen=True)
class OperationCall:
    """An operation the hop ran, with its result code (for logs and audits)."""

    name: str
    args: Mapping[str, Any]
    code: str


@dataclass(frozen=True)
class StepResult:
    """The outcome of one hop: the new state and what to show."""

    state: SessionState
    screen: Screen
    accepted: bool
    operations: tuple[OperationCall, ...] = ()

    @property
    def ended(self) -> bool:
        """True when the session is over (final screen or handoff)."""
        return self.screen.final

    @property
    def handoff_reason(self) -> str | None:
        """Why the session went to an operator, or None."""
        return self.screen.handoff.reason if self.screen.handoff else None


def scope_of(state: SessionState) -> dict[str, Any]:
    """What templates and conditions read: the variables plus ``session``."""
    scope = dict(state.variables)
    scope["session"] = {"language": state.language, "channel": state.channel}
    return scope


def argument(value: ArgValue, scope: Mapping[str, Any]) -> Any:
    """An argument's value: ``$path`` reads the scope, anything else is literal."""
    if isinstance(value, str) and value.startswith("$"):
        return lookup(scope, value[1:])
    return value


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars of an operation result, small enough for the session (lists dropped)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dt.date | dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, str):
            out[key] = value[: limits.MAX_VARIABLE_LENGTH]
        elif value is None or isinstance(value, bool | int | float):
            out[key] = value
    return out
