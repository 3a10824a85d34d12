"""Joining the programme, language, blocking, and reading a subscriber."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ledger import _accounts
from ledger._tx import Op, begin_operation, complete_operation, request_hash, run_operation
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.msisdn import normalize
from ledger.points import read_balance
from ledger.results import (
    Enrollment,
    LanguageChange,
    Outcome,
    Subscriber,
    SubscriberSummary,
)
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

#: How a subscriber can join: by themselves (USSD, IVR, SMS, or the operator's
#: systems on their request), at a shop, through the help desk, on the web.
ENROLLMENT_CHANNELS = ("self", "shop", "help_desk", "web")
#: Channels where a member of staff enrols someone, and must be named.
STAFF_CHANNELS = ("shop", "help_desk")
#: Longest staff id or actor name kept.
MAX_STAFF_ID = 64
#: Longest block/unblock reason kept.
MAX_REASON = 500
#: The reason recorded when an internal caller gives none.
NO_REASON = "not given"


@dataclass(frozen=True)
class BlockChange:
    """What a block or unblock did: the status now, whether it changed, gifts sent back."""

    msisdn: str
    status: str
    changed: bool
    gifts_returned: int


@dataclass(frozen=True)
class EnrollmentRecord:
    """How a subscriber joined; ``channel`` None for a non-member or an early member."""

    status: str
    channel: str | None
    staff_id: str | None
    document_checked: bool | None
    enrolled_at: datetime | None

    def as_details(self) -> dict[str, Any]:
        """JSON-ready (``enrolled_at`` in ISO 8601)."""
        return {
            "status": self.status,
            "channel": self.channel,
            "staff_id": self.staff_id,
            "document_checked": self.document_checked,
            "enrolled_at": self.enrolled_at.isoformat() if self.enrolled_at else None,
        }


async def enroll(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    key: str,
    language: str | None = None,
    channel: str = "self",
    staff_id: str | None = None,
    document_checked: bool | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Enrollment]:
    """Join the programme. Codes: ok, already_enrolled, blocked.

    ``channel`` (one of ``ENROLLMENT_CHANNELS``) says how, recorded with the
    subscriber; ``shop`` and ``help_desk`` need the ``staff_id`` who did it
    (``ValueError`` otherwise). Joining queues the ``welcome`` SMS in the same
    transaction, so every way in sends it exactly once. ``already_enrolled``
    details say how the member joined then (``channel``, ``staff_id``,
    ``document_checked``, ``enrolled_at``).
    """
    number = normalize(msisdn, settings.default_region)
    _check_enrollment(channel, staff_id)
    if language is not None and language not in settings.languages:
        language = None

    async def body(op: Op) -> Outcome[Enrollment]:
        sub = await _accounts.create_subscriber(
            op.conn,
            number,
            status="not_enrolled",
            language=language or settings.default_language,
            now=op.now,
        )
        op.subscriber_id = sub.id
        joined = await op.conn.fetchrow(
            "UPDATE subscribers SET status = 'active', enrolled_at = $2, "
            "enrollment_channel = $3, enrollment_staff_id = $4, "
            "enrollment_document_checked = $5 "
            "WHERE id = $1 AND status = 'not_enrolled' RETURNING enrolled_at",
            sub.id,
            op.now,
            channel,
            staff_id,
            document_checked,
        )
        if joined is not None:
            available = await _accounts.available_points(op.conn, sub.account_id, op.now)
            await _accounts.emit(
                op, "welcome", number, {"language": sub.language, "points": available}
            )
            return Outcome(Code.OK, Enrollment(number, "active", joined["enrolled_at"]))
        row = await op.conn.fetchrow(_ENROLLMENT + "WHERE id = $1", sub.id)
        assert row is not None
        if row["status"] == "blocked":
            return Outcome(Code.BLOCKED)
        return Outcome(Code.ALREADY_ENROLLED, details=_record(row).as_details())

    return await run_operation(
        pool,
        kind="enroll",
        key=key,
        request={
            "msisdn": number,
            "language": language,
            "channel": channel,
            "staff_id": staff_id,
            "document_checked": document_checked,
        },
        value_type=Enrollment,
        body=body,
        clock=clock,
        settings=settings,
    )


def _check_enrollment(channel: str, staff_id: str | None) -> None:
    if channel not in ENROLLMENT_CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(ENROLLMENT_CHANNELS)}")
    if channel in STAFF_CHANNELS and not staff_id:
        raise ValueError(f"an enrolment by {channel} needs the staff_id of who did it")
    if staff_id is not None and not 0 < len(staff_id) <= MAX_STAFF_ID:
        raise ValueError(f"staff_id must be 1 to {MAX_STAFF_ID} characters")


_ENROLLMENT = (
    "SELECT status, enrolled_at, enrollment_channel, enrollment_staff_id, "
    "enrollment_document_checked FROM subscribers "
)


def _record(row: asyncpg.Record) -> EnrollmentRecord:
    return EnrollmentRecord(
        channel=row["enrollment_channel"],
        staff_id=row["enrollment_staff_id"],
        document_checked=row["enrollment_document_checked"],
        enrolled_at=row["enrolled_at"],
        status=row["status"],
    )


async def set_language(
    pool: asyncpg.Pool,
    msisdn: str,
    language: str,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[LanguageChange]:
    """Choose the language of menus and messages; works before joining too.

    Codes: ok, unsupported_language.
    """
    number = normalize(msisdn, settings.default_region)

    async def body(op: Op) -> Outcome[LanguageChange]:
        if language not in settings.languages:
            return Outcome(
                Code.UNSUPPORTED_LANGUAGE, details={"supported": list(settings.languages)}
            )
        sub = await _accounts.create_subscriber(
            op.conn, number, status="not_enrolled", language=language, now=op.now
        )
        op.subscriber_id = sub.id
        await op.conn.execute(
            "UPDATE subscribers SET language = $2 WHERE id = $1", sub.id, language
        )
        return Outcome(Code.OK, LanguageChange(number, language))

    return await run_operation(
        pool,
        kind="set_language",
        key=key,
        request={"msisdn": number, "language": language},
        value_type=LanguageChange,
        body=body,
        clock=clock,
        settings=settings,
    )


async def block(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    key: str,
    reason: str = NO_REASON,
    actor: str = "system",
    staff_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[BlockChange]:
    """Bar a number from the programme (an operator's decision). Code: ok.

    A blocked subscriber keeps their points but cannot spend or gift them,
    nor accept gifts or accruals. Gifts pending *to* them go back to their
    senders now (each as a ``decline_gift`` operation keyed
    ``block-return:<gift id>``, the sender told by a ``gift_returned`` SMS);
    gifts they sent stay pending for their recipients (the points already
    left their account). Blocking a blocked number changes nothing but is
    audited too (``subscriber_blocks``: who, why, when, what changed).
    """
    number = normalize(msisdn, settings.default_region)
    _check_audit(reason, actor, staff_id)

    async def body(op: Op) -> Outcome[BlockChange]:
        # A number never seen is created and blocked, so the audit says it changed.
        sub = await _accounts.create_subscriber(
            op.conn, number, status="not_enrolled", language=settings.default_language, now=op.now
        )
        op.subscriber_id = sub.id
        before = await op.conn.fetchval(
            "SELECT status FROM subscribers WHERE id = $1 FOR UPDATE", sub.id
        )
        await op.conn.execute("UPDATE subscribers SET status = 'blocked' WHERE id = $1", sub.id)
        returned = await _return_pending_gifts(op, sub.id)
        changed = before != "blocked"
        await _audit(
            op, sub.id, "block", reason=reason, actor=actor, staff_id=staff_id,
            changed=changed, gifts_returned=returned,
        )  # fmt: skip
        return Outcome(Code.OK, BlockChange(number, "blocked", changed, returned))

    return await run_operation(
        pool,
        kind="block",
        key=key,
        request={"msisdn": number, "reason": reason, "actor": actor, "staff_id": staff_id},
        value_type=BlockChange,
        body=body,
        clock=clock,
        settings=settings,
    )


async def unblock(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    key: str,
    reason: str = NO_REASON,
    actor: str = "system",
    staff_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[BlockChange]:
    """Lift a block: a member again (``active``), or ``not_enrolled`` if they never joined.

    Codes: ok (also when the number was not blocked: audited, nothing
    changes), not_enrolled (a number the ledger has never seen). Gifts
    returned at the block stay returned.
    """
    number = normalize(msisdn, settings.default_region)
    _check_audit(reason, actor, staff_id)

    async def body(op: Op) -> Outcome[BlockChange]:
        sub = await _accounts.find_subscriber(op.conn, number)
        if sub is None:
            return Outcome(Code.NOT_ENROLLED)
        op.subscriber_id = sub.id
        row = await op.conn.fetchrow(
            "SELECT status, enrolled_at FROM subscribers WHERE id = $1 FOR UPDATE", sub.id
        )
        assert row is not None
        status = row["status"]
        if status == "blocked":
            status = "active" if row["enrolled_at"] is not None else "not_enrolled"
            await op.conn.execute(
                "UPDATE subscribers SET status = $2 WHERE id = $1", sub.id, status
            )
        changed = row["status"] == "blocked"
        await _audit(
            op, sub.id, "unblock", reason=reason, actor=actor, staff_id=staff_id,
            changed=changed, gifts_returned=0,
        )  # fmt: skip
        return Outcome(Code.OK, BlockChange(number, status, changed, 0))

    return await run_operation(
        pool,
        kind="unblock",
        key=key,
        request={"msisdn": number, "reason": reason, "actor": actor, "staff_id": staff_id},
        value_type=BlockChange,
        body=body,
        clock=clock,
        settings=settings,
    )


def _check_audit(reason: str, actor: str, staff_id: str | None) -> None:
    if not reason.strip() or len(reason) > MAX_REASON:
        raise ValueError(f"a reason of 1 to {MAX_REASON} characters is required")
    if not 0 < len(actor) <= MAX_STAFF_ID:
        raise ValueError(f"actor must be 1 to {MAX_STAFF_ID} characters")
    if staff_id is not None and not 0 < len(staff_id) <= MAX_STAFF_ID:
        raise ValueError(f"staff_id must be 1 to {MAX_STAFF_ID} characters")


async def _audit(
    op: Op,
    subscriber_id: int,
    action: str,
    *,
    reason: str,
    actor: str,
    staff_id: str | None,
    changed: bool,
    gifts_returned: int,
) -> None:
    await op.conn.execute(
        "INSERT INTO subscriber_blocks (subscriber_id, action, reason, actor, staff_id, "
        "changed, gifts_returned, operation_id, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        subscriber_id,
        action,
        reason,
        actor,
        staff_id,
        changed,
        gifts_returned,
        op.id,
        op.now,
    )


_PENDING_TO = """
SELECT id, sender_id, points, operation_id FROM gifts
WHERE recipient_id = $1 AND status = 'pending'
ORDER BY id
FOR UPDATE
"""


async def _return_pending_gifts(op: Op, recipient_id: int) -> int:
    """Send every gift pending to ``recipient_id`` back to its sender; return how many.

    Like the gift sweeper: one ``decline_gift`` operation per gift inside this
    transaction (so each sender's history shows ``gift_returned``), gifts
    locked before the senders' accounts, those in ascending id order.
    """
    due = await op.conn.fetch(_PENDING_TO, recipient_id)
    if not due:
        return 0
    senders = {
        row["sender_id"]: await _accounts.subscriber_by_id(op.conn, row["sender_id"]) for row in due
    }
    await _accounts.lock_accounts(op.conn, [s.account_id for s in senders.values()])
    recipient = await _accounts.subscriber_by_id(op.conn, recipient_id)
    for row in due:
        key = f"block-return:{row['id']}"
        digest = request_hash("decline_gift", {"gift": row["id"], "blocked": recipient.msisdn})
        op_pk = await begin_operation(op.conn, key, "decline_gift", digest, op.now)
        assert op_pk is not None, f"gift {row['id']} was returned twice"
        sender = senders[row["sender_id"]]
        returning = Op(op.conn, op_pk, key, op.now, op.settings, subscriber_id=sender.id)
        await op.conn.execute(
            "UPDATE gifts SET status = 'declined', resolved_at = $2, resolve_operation_id = $3 "
            "WHERE id = $1 AND status = 'pending'",
            row["id"],
            op.now,
            op_pk,
        )
        shares = await _accounts.consumed_by(op.conn, row["operation_id"])
        await _accounts.restore(returning, sender.account_id, shares, "escrow")
        await _accounts.emit(
            returning,
            "gift_returned",
            sender.msisdn,
            {
                "language": sender.language,
                "gift_id": row["id"],
                "points": row["points"],
                "recipient": recipient.msisdn,
                "reason": "blocked",
            },
        )
        await complete_operation(
            returning, Outcome(Code.OK, details={"gift_id": row["id"], "reason": "blocked"})
        )
    return len(due)


@dataclass(frozen=True)
class BlockEntry:
    """One audited block or unblock."""

    action: str
    reason: str
    actor: str
    staff_id: str | None
    changed: bool
    gifts_returned: int
    at: datetime


async def enrollment_record(
    pool: asyncpg.Pool, msisdn: str, *, settings: LedgerSettings = DEFAULT_SETTINGS
) -> EnrollmentRecord | None:
    """How the subscriber joined (all None before joining); None for a number never seen."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_ENROLLMENT + "WHERE msisdn = $1", number)
    return None if row is None else _record(row)


async def block_history(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    limit: int = 20,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> list[BlockEntry]:
    """The subscriber's audited blocks and unblocks, newest first."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT b.action, b.reason, b.actor, b.staff_id, b.changed, b.gifts_returned, "
            "b.created_at AS at FROM subscriber_blocks b "
            "JOIN subscribers s ON s.id = b.subscriber_id "
            "WHERE s.msisdn = $1 ORDER BY b.id DESC LIMIT $2",
            number,
            limit,
        )
    return [BlockEntry(**dict(row)) for row in rows]


async def get_subscriber(
    pool: asyncpg.Pool, msisdn: str, *, settings: LedgerSettings = DEFAULT_SETTINGS
) -> Subscriber | None:
    """The subscriber, or None for a number the ledger has never seen."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn:
        sub = await _accounts.find_subscriber(conn, number)
    if sub is None:
        return None
    return Subscriber(sub.msisdn, sub.status, sub.language, sub.enrolled_at, sub.created_at)


async def subscriber_summary(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> SubscriberSummary | None:
    """Status, language and balance in one consistent read; None if never seen."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        sub = await _accounts.find_subscriber(conn, number)
        if sub is None:
            return None
        balance = await read_balance(conn, sub, clock.now(), settings)
    return SubscriberSummary(sub.msisdn, sub.status, sub.language, sub.enrolled_at, balance)
