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
it. The table is passed in (``load_menu(..., operations=...)``); ``OPERATIONS``
below is the default until the service owns its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


def _spec(
    args: tuple[str, ...],
    codes: tuple[str, ...],
    *,
    mutating: bool,
    optional: tuple[str, ...] = (),
) -> OperationSpec:
    return OperationSpec(
        args=frozenset(args),
        codes=frozenset((OK, UNAVAILABLE, *codes)),
        mutating=mutating,
        optional_args=frozenset(optional),
    )


OperationTable = Mapping[str, OperationSpec]

# Result data (keys) per operation, for placeholder authors:
#   subscriber     -> status ("not_enrolled" | "active" | "blocked"), language
#   enroll         -> status
#   balance        -> available, pending_in, pending_out, expiring_points, expiring_date
#   history        -> items: [{kind, points, created_at}]
#   catalog        -> items: [{code, title, description, price, category}]
#   redeem         -> reward_title, points, available, redemption_id
#   gift           -> gift_id, points, recipient, expires_at, available
#   pending_gifts  -> items: [{gift_id, sender, points, expires_at}], count
#   accept_gift    -> gift_id, points, sender, available, remaining (pending gifts left)
#   decline_gift   -> gift_id, points, sender, remaining
#   set_language   -> language
OPERATIONS: OperationTable = {
    "subscriber": _spec((), (), mutating=False),
    "enroll": _spec((), ("already_enrolled", "blocked"), mutating=True),
    "balance": _spec((), ("not_enrolled", "blocked"), mutating=False),
    "history": _spec((), ("not_enrolled",), mutating=False, optional=("limit",)),
    "catalog": _spec((), (), mutating=False, optional=("category",)),
    "redeem": _spec(
        ("reward_code",),
        ("not_enrolled", "blocked", "insufficient_points", "unknown_reward"),
        mutating=True,
    ),
    "gift": _spec(
        ("recipient", "points"),
        (
            "not_enrolled",
            "blocked",
            "invalid_recipient",
            "recipient_not_enrolled",
            "self_gift",
            "insufficient_points",
            "below_minimum",
            "above_maximum",
            "daily_cap_exceeded",
        ),
        mutating=True,
    ),
    "pending_gifts": _spec((), (), mutating=False),
    "accept_gift": _spec(
        (),
        ("no_pending_gift", "gift_expired", "gift_not_pending"),
        mutating=True,
        optional=("gift_id",),
    ),
    "decline_gift": _spec(
        (),
        ("no_pending_gift", "gift_expired", "gift_not_pending"),
        mutating=True,
        optional=("gift_id",),
    ),
    "set_language": _spec(("language",), ("unsupported_language",), mutating=True),
}
