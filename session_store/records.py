"""The values the store keeps: session records, save results, resume points.

Everything menu-specific (variables, failure counters, breadcrumb...) travels
in ``state``, an opaque string the menu engine writes and reads; the store
never looks inside it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Identity of a session: the gateway's own session id on one channel.

    ``msisdn`` (E.164), when given, puts the session in its subscriber's hash
    slot, beside their resume pointer: one script can then read or write both
    (a begin that takes the pointer, a save that sets it), on Redis Cluster too.
    """

    channel: str  # "ussd", "ivr", "sms": chooses the TTL
    gateway: str  # dialect name, e.g. "africastalking", "native", "twilio"
    session_id: str  # as the gateway sent it
    msisdn: str = ""  # the subscriber's number, E.164; "" for a session keyed alone


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session's state between two hops.

    ``version`` is the version the record was read at (0 for a record not yet
    created); the store sets it, callers never bump it themselves.
    """

    ref: SessionRef
    menu_version: str
    node: str
    state: str  # opaque, e.g. the engine's compact JSON
    last_hop_id: str | None = None
    last_reply: str | None = None  # opaque, e.g. the rendered screen as JSON
    version: int = 0

    def reply_for(self, hop_id: str) -> str | None:
        """The stored reply when ``hop_id`` was already answered, else None."""
        if self.last_hop_id is not None and self.last_hop_id == hop_id:
            return self.last_reply
        return None


class SaveStatus(enum.Enum):
    """How a ``create`` or ``save`` ended."""

    SAVED = "saved"
    #: Someone committed first (or, for ``create``, the session exists):
    #: ``SaveResult.record`` is the record that won.
    CONFLICT = "conflict"
    #: ``save`` on a session that is gone (expired or deleted).
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class SaveResult:
    """Outcome of a compare-and-set.

    ``record`` is the stored record with its new version when SAVED, the
    winner's record on CONFLICT, and None when MISSING.
    """

    status: SaveStatus
    record: SessionRecord | None

    @property
    def saved(self) -> bool:
        """True when this call committed."""
        return self.status is SaveStatus.SAVED


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a subscriber was when their session dropped.

    Holds everything needed to continue even after the dropped session's own
    record expired: the menu version, node and opaque state, plus the old
    session's identity so idempotency keys derived from it stay stable.
    """

    channel: str
    msisdn: str  # E.164, e.g. "+79161234567"
    gateway: str
    session_id: str
    menu_version: str
    node: str
    state: str
