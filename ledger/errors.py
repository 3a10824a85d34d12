"""Result codes and the few exceptions of the ledger.

Business outcomes are never exceptions: every operation returns an
``Outcome`` whose ``code`` is one of ``Code``. The menus package branches on
the string values (see ``menus/operations.py``); they must not change.
Exceptions are reserved for caller bugs (an unparsable subscriber number, a
non-positive accrual) and for infrastructure failures.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """Result codes. The values are the contract with menus and the HTTP API."""

    OK = "ok"
    ALREADY_ENROLLED = "already_enrolled"
    BLOCKED = "blocked"
    NOT_ENROLLED = "not_enrolled"
    INSUFFICIENT_POINTS = "insufficient_points"
    UNKNOWN_REWARD = "unknown_reward"
    INVALID_RECIPIENT = "invalid_recipient"
    RECIPIENT_NOT_ENROLLED = "recipient_not_enrolled"
    SELF_GIFT = "self_gift"
    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    DAILY_CAP_EXCEEDED = "daily_cap_exceeded"
    NO_PENDING_GIFT = "no_pending_gift"
    GIFT_EXPIRED = "gift_expired"
    GIFT_NOT_PENDING = "gift_not_pending"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    # For the HTTP/API layer only (menus never see these):
    # the same idempotency key was used for a different request;
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    # a provisioning callback names a redemption that does not exist;
    UNKNOWN_REDEMPTION = "unknown_redemption"
    # a provisioning callback for a redemption that was already settled.
    REDEMPTION_NOT_RESERVED = "redemption_not_reserved"


class LedgerError(Exception):
    """Base class of the ledger's exceptions."""


class InvalidMsisdn(LedgerError, ValueError):  # noqa: N818 - reads as the domain term
    """The subscriber's own number could not be read as a phone number."""

    def __init__(self, raw: str) -> None:
        super().__init__(f"not a valid phone number: {raw!r}")
        self.raw = raw


class TooManyRetries(LedgerError):  # noqa: N818 - reads as the domain term
    """A transaction kept failing with deadlocks or serialization errors."""
