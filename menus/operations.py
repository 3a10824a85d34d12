"""The operations port: what menus may ask the backend to do.

``menus`` never imports the ledger and never runs an operation itself. An
``action`` or ``list`` node names an operation; the engine pauses the hop with
a ``PendingOperation`` (see ``menus.turn``), the caller runs it (the service
binds it to the ledger, with the subscriber's number and an idempotency key
derived from the session and hop) and resumes the hop with the
``OperationResult``. The result code is what a node branches on; ``data``
fills placeholders.

An operation table (name -> ``OperationSpec``) is the contract: the validator
rejects unknown operation names, unknown arguments and branches on result
codes an operation cannot return, and ``PendingOperation.mutating`` comes from
it. The program running the menus owns its table and passes it in
(``load_menu(..., operations=...)``); ``menus`` knows no operation by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

OK = "ok"
# Returned by the binding, never by the ledger: the backend did not answer in
# time or is down. Every action node handles it (explicitly or by default).
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class OperationResult:
    """What an operation answered: a result code and data for placeholders."""

    code: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the operation succeeded."""
        return self.code == OK


@dataclass(frozen=True, slots=True)
class PendingOperation:
    """An operation the hop waits for: run it, then ``Turn.resume`` with its result.

    ``mutating`` (from the operation table) tells the caller to claim the
    session before running it, so a hop that lost a race moves no points.
    """

    name: str
    args: Mapping[str, Any]
    mutating: bool


class Operations(Protocol):
    """Runs a named operation for the subscriber of the current hop."""

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult: ...


@dataclass(frozen=True)
class OperationSpec:
    """Arguments an operation takes, codes it returns, and whether it changes data."""

    args: frozenset[str]
    codes: frozenset[str]
    mutating: bool
    optional_args: frozenset[str] = frozenset()


OperationTable = Mapping[str, OperationSpec]

#: No operations at all: the default for a menu that runs none. A program
#: that runs operations passes its own table (the service derives its table
#: from the ledger functions it links each name to).
NO_OPERATIONS: OperationTable = MappingProxyType({})
