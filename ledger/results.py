"""Typed results of ledger operations.

Every operation returns ``Outcome[V]``: a ``code`` (``Code.OK`` or a
rejection), on success a typed ``value``, on rejection ``details`` (plain
JSON values that help explain it, such as the available points). ``data``
flattens either into the mapping menus use for placeholders.

Results of mutating operations are stored as JSON with the operation and
returned again for a retried request; ``encode``/``decode`` round-trip
exactly, and a first answer is itself passed through them, so a retry gets a
result equal to the first.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from ledger.errors import Code

V = TypeVar("V")

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Outcome(Generic[V]):
    """What an operation answered."""

    code: Code
    value: V | None = None
    details: JsonObject = field(default_factory=dict)
    # True when this is the stored answer to an earlier request with the same
    # idempotency key. Not part of equality: a replay equals the first answer.
    replayed: bool = field(default=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the operation succeeded."""
        return self.code is Code.OK

    @property
    def data(self) -> JsonObject:
        """The value's fields (success) or the details (rejection), as a dict."""
        if self.value is not None and dataclasses.is_dataclass(self.value):
            return dataclasses.asdict(self.value)  # type: ignore[arg-type]
        return dict(self.details)

    def unwrap(self) -> V:
        """The value of a successful outcome; raises on a rejection."""
        if self.value is None:
            raise ValueError(f"operation was rejected: {self.code}")
        return self.value


# -- values -------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    """A subscriber as the ledger knows them."""

    msisdn: str
    status: str
    language: str
    enrolled_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Enrollment:
    msisdn: str
    status: str
    enrolled_at: datetime


@dataclass(frozen=True)
class LanguageChange:
    msisdn: str
    language: str


@dataclass(frozen=True)
class StatusChange:
    msisdn: str
    status: str


@dataclass(frozen=True)
class Balance:
    """Points of one subscriber.

    ``available`` can be spent now (lots past their expiry are excluded even
    before the sweeper removes them); ``pending_in`` waits in gifts to this
    subscriber; ``pending_out`` left the account but may come back (pending
    gifts sent, redemptions not yet fulfilled). ``expiring_points`` expire
    first, at ``expiring_at`` (``expiring_date`` in the programme's time zone).
    """

    available: int
    pending_in: int
    pending_out: int
    expiring_points: int
    expiring_at: datetime | None
    expiring_date: date | None


@dataclass(frozen=True)
class Expiry:
    """``points`` of a subscriber expire at the end of ``day`` (the programme's time zone)."""

    day: date
    points: int


@dataclass(frozen=True)
class ExpirySchedule:
    """When the available points expire, soonest first, one entry per calendar day."""

    items: list[Expiry]


@dataclass(frozen=True)
class SubscriberSummary:
    """Everything ``GET /v1/subscribers/{msisdn}`` shows."""

    msisdn: str
    status: str
    language: str
    enrolled_at: datetime | None
    balance: Balance


@dataclass(frozen=True)
class HistoryItem:
    """One movement on the subscriber's account, newest first in a history.

    ``kind``: accrual, redemption, redemption_refund, gift_sent,
    gift_received, gift_returned, expiry. ``points`` is signed.
    """

    kind: str
    points: int
    created_at: datetime
    balance_after: int
    operation_id: str


@dataclass(frozen=True)
class History:
    items: list[HistoryItem]


@dataclass(frozen=True)
class Accrual:
    msisdn: str
    points: int
    expires_at: datetime
    available: int


@dataclass(frozen=True)
class CatalogItem:
    code: str
    category: str
    title: str
    description: str
    price: int


@dataclass(frozen=True)
class Catalog:
    items: list[CatalogItem]


@dataclass(frozen=True)
class Redemption:
    redemption_id: int
    reward_code: str
    reward_title: str
    points: int
    available: int
    status: str


@dataclass(frozen=True)
class RedemptionSettlement:
    """The answer to a provisioning callback."""

    redemption_id: int
    msisdn: str
    reward_code: str
    points: int
    status: str


@dataclass(frozen=True)
class GiftSent:
    gift_id: int
    points: int
    recipient: str
    expires_at: datetime
    available: int


@dataclass(frozen=True)
class PendingGift:
    gift_id: int
    sender: str
    points: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PendingGifts:
    items: list[PendingGift]
    count: int


@dataclass(frozen=True)
class SentGift:
    """A gift this subscriber sent that still waits for the recipient's answer."""

    gift_id: int
    recipient: str
    points: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class SentGifts:
    items: list[SentGift]
    count: int


@dataclass(frozen=True)
class GiftAccepted:
    gift_id: int
    points: int
    sender: str
    available: int
    remaining: int


@dataclass(frozen=True)
class GiftDeclined:
    gift_id: int
    points: int
    sender: str
    remaining: int


@dataclass(frozen=True)
class GiftCancelled:
    gift_id: int
    points: int
    recipient: str
    available: int


# -- JSON round trip of stored results -----------------------------------------


def encode(outcome: Outcome[Any]) -> JsonObject:
    """``outcome`` as a JSON-ready dict (datetimes in ISO 8601)."""
    value = None
    if outcome.value is not None:
        value = {
            f.name: _encode_scalar(getattr(outcome.value, f.name))
            for f in dataclasses.fields(outcome.value)
        }
    return {"code": outcome.code.value, "value": value, "details": outcome.details}


def decode(obj: JsonObject, value_type: type[V] | None, *, replayed: bool = False) -> Outcome[V]:
    """The ``Outcome`` that ``encode`` produced ``obj`` from."""
    raw_value = obj.get("value")
    value: V | None = None
    if raw_value is not None and value_type is not None:
        hints = _type_hints(value_type)
        value = value_type(
            **{name: _decode_scalar(raw, hints[name]) for name, raw in raw_value.items()}
        )
    return Outcome(Code(obj["code"]), value, dict(obj.get("details") or {}), replayed)


# Resolving a value type's annotations costs more than the rest of a decode.
_TYPE_HINTS: dict[type[Any], dict[str, Any]] = {}


def _type_hints(value_type: type[Any]) -> dict[str, Any]:
    hints = _TYPE_HINTS.get(value_type)
    if hints is None:
        hints = _TYPE_HINTS[value_type] = typing.get_type_hints(value_type)
    return hints


def _encode_scalar(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | str | bool | float) or value is None:
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in an operation result")


def _decode_scalar(raw: Any, hint: Any) -> Any:
    if raw is None:
        return None
    # Unwrap "X | None".
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if hint is date:
        return date.fromisoformat(raw)
    return raw
