"""Gifts between subscribers, held in escrow until resolved.

A gift debits the sender into the escrow account at once. It is then
resolved exactly once by one guarded state change (``UPDATE ... WHERE status
= 'pending'``): accepted by the recipient (escrow -> recipient, as new lots
keeping the expiry dates of the sender's lots), declined by the recipient or
cancelled by the sender (escrow -> the sender's original lots), or expired by
the sweeper (likewise). Accept, decline and cancel check ``expires_at``
themselves, so a gift past its expiry can only be expired, whenever the
sweeper happens to run.

``gift``, ``accept_gift`` and ``decline_gift`` run as stored functions, one
statement each (``ledger_gift``, ``ledger_accept_gift``, ``ledger_decline_gift``
in migration 0007; ``cancel_gift`` and the sweeper stay in Python): their rules live
there, and ``ledger_resolve_gift`` is ``_resolve``'s twin, so a change to one
is made to the other.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from ledger import _accounts
from ledger._accounts import SubscriberRow
from ledger._tx import (
    Op,
    begin_operation,
    call_operation,
    complete_operation,
    request_hash,
    run_operation,
    with_retries,
)
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.results import (
    GiftAccepted,
    GiftCancelled,
    GiftDeclined,
    GiftSent,
    Outcome,
    PendingGift,
    PendingGifts,
    SentGift,
    SentGifts,
)
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

# The stored functions of migration 0007: each operation in one statement.
_GIFT = "SELECT state, result FROM ledger_gift($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_ACCEPT_GIFT = "SELECT state, result FROM ledger_accept_gift($1, $2, $3, $4, $5)"
_DECLINE_GIFT = "SELECT state, result FROM ledger_decline_gift($1, $2, $3, $4, $5)"
_BIGINT = 2**63 - 1


def day_start(moment: datetime, timezone: str) -> datetime:
    """Midnight of ``moment``'s calendar day in ``timezone``."""
    zone = ZoneInfo(timezone)
    return datetime.combine(moment.astimezone(zone).date(), time(), tzinfo=zone)


async def gift(
    pool: asyncpg.Pool,
    sender: str,
    recipient: str,
    points: int,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[GiftSent]:
    """Send points to another subscriber; they wait in escrow until resolved.

    Codes, in the order they are checked: not_enrolled, blocked (sender),
    invalid_recipient, self_gift, below_minimum, above_maximum,
    recipient_not_enrolled, daily_cap_exceeded, insufficient_points.
    """
    sender_number = _accounts.normalize(sender, settings.default_region)
    recipient_number = _accounts.try_normalize(recipient, settings.default_region)
    if isinstance(points, bool) or not isinstance(points, int):
        raise TypeError(f"points must be an int, not {type(points).__name__}")

    request = {
        "sender": sender_number,
        "recipient": recipient_number or recipient.strip(),
        "points": points,
    }

    def args(now: datetime) -> tuple[Any, ...]:
        expires_at = (now + settings.gift_ttl).astimezone(UTC)
        return (
            sender_number,
            recipient_number,
            # Beyond bigint the limits decide anyway (below_minimum, above_maximum).
            min(max(points, -_BIGINT), _BIGINT),
            settings.gift_min_points,
            settings.gift_max_points,
            settings.gift_daily_cap_points,
            day_start(now, settings.timezone),
            expires_at,
            expires_at.isoformat(),
        )

    return await call_operation(
        pool,
        kind="gift",
        key=key,
        request=request,
        value_type=GiftSent,
        query=_GIFT,
        args=args,
        clock=clock,
        settings=settings,
    )


async def pending_gifts(
    pool: asyncpg.Pool,
    recipient: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[PendingGifts]:
    """Gifts waiting for the recipient's answer, oldest first. Code: ok."""
    number = _accounts.normalize(recipient, settings.default_region)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT g.id, s.msisdn AS sender, g.points, g.created_at, g.expires_at "
            "FROM gifts g JOIN subscribers r ON r.id = g.recipient_id "
            "JOIN subscribers s ON s.id = g.sender_id "
            "WHERE r.msisdn = $1 AND g.status = 'pending' AND g.expires_at > $2 "
            "ORDER BY g.created_at, g.id",
            number,
            clock.now(),
        )
    items = [
        PendingGift(row["id"], row["sender"], row["points"], row["created_at"], row["expires_at"])
        for row in rows
    ]
    return Outcome(Code.OK, PendingGifts(items, len(items)))


async def sent_gifts(
    pool: asyncpg.Pool,
    sender: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[SentGifts]:
    """Gifts the sender sent that still wait for an answer (cancellable), oldest first.

    Code: ok.
    """
    number = _accounts.normalize(sender, settings.default_region)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT g.id, r.msisdn AS recipient, g.points, g.created_at, g.expires_at "
            "FROM gifts g JOIN subscribers s ON s.id = g.sender_id "
            "JOIN subscribers r ON r.id = g.recipient_id "
            "WHERE s.msisdn = $1 AND g.status = 'pending' AND g.expires_at > $2 "
            "ORDER BY g.created_at, g.id",
            number,
            clock.now(),
        )
    items = [
        SentGift(row["id"], row["recipient"], row["points"], row["created_at"], row["expires_at"])
        for row in rows
    ]
    return Outcome(Code.OK, SentGifts(items, len(items)))


# -- resolution -----------------------------------------------------------------

_OLDEST_PENDING = """
SELECT id FROM gifts
WHERE recipient_id = $1 AND status = 'pending' AND expires_at > $2
ORDER BY created_at, id LIMIT 1
FOR UPDATE
"""
_GIFT_COLUMNS = "id, sender_id, recipient_id, points, operation_id, expires_at"


async def _resolve(
    op: Op, party: str, party_id: int, gift_id: int | None, new_status: str
) -> tuple[asyncpg.Record | None, Code]:
    """The one guarded state change of a gift, by its recipient or sender.

    ``party`` is ``recipient_id`` or ``sender_id``: a gift of someone else is
    reported as ``no_pending_gift``, never revealed.
    """
    assert party in ("recipient_id", "sender_id")
    if gift_id is None:
        gift_id = await op.conn.fetchval(_OLDEST_PENDING, party_id, op.now)
        if gift_id is None:
            return None, Code.NO_PENDING_GIFT
    row = await op.conn.fetchrow(
        f"UPDATE gifts SET status = $3, resolved_at = $4, resolve_operation_id = $5 "  # noqa: S608 - party is one of two constants
        f"WHERE id = $1 AND {party} = $2 AND status = 'pending' AND expires_at > $4 "
        f"RETURNING {_GIFT_COLUMNS}",
        gift_id,
        party_id,
        new_status,
        op.now,
        op.id,
    )
    if row is not None:
        return row, Code.OK
    found = await op.conn.fetchrow(
        f"SELECT status, expires_at FROM gifts WHERE id = $1 AND {party} = $2",  # noqa: S608
        gift_id,
        party_id,
    )
    if found is None:
        return None, Code.NO_PENDING_GIFT
    if found["status"] == "expired" or (
        found["status"] == "pending" and found["expires_at"] <= op.now
    ):
        return None, Code.GIFT_EXPIRED
    return None, Code.GIFT_NOT_PENDING


async def _return_to_sender(op: Op, gift_row: asyncpg.Record) -> tuple[SubscriberRow, int]:
    """Escrow -> the sender's original lots; the sender and their new balance."""
    sender = await _accounts.subscriber_by_id(op.conn, gift_row["sender_id"])
    await _accounts.lock_accounts(op.conn, [sender.account_id])
    shares = await _accounts.consumed_by(op.conn, gift_row["operation_id"])
    await _accounts.restore(op, sender.account_id, shares, "escrow")
    return sender, await _accounts.available_points(op.conn, sender.account_id, op.now)


def _gift_payload(language: str, gift_row: asyncpg.Record, **extra: Any) -> dict[str, Any]:
    return {"language": language, "gift_id": gift_row["id"], "points": gift_row["points"], **extra}


async def accept_gift(
    pool: asyncpg.Pool,
    recipient: str,
    gift_id: int | None = None,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[GiftAccepted]:
    """Take a pending gift (the given one or the oldest).

    Codes: ok, no_pending_gift, gift_expired, gift_not_pending.
    """
    number = _accounts.normalize(recipient, settings.default_region)

    return await call_operation(
        pool,
        kind="accept_gift",
        key=key,
        request={"recipient": number, "gift_id": gift_id},
        value_type=GiftAccepted,
        query=_ACCEPT_GIFT,
        args=lambda _now: (number, gift_id),
        clock=clock,
        settings=settings,
    )


async def decline_gift(
    pool: asyncpg.Pool,
    recipient: str,
    gift_id: int | None = None,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[GiftDeclined]:
    """Refuse a pending gift (the given one or the oldest); points go back to the sender.

    Codes: ok, no_pending_gift, gift_expired, gift_not_pending.
    """
    number = _accounts.normalize(recipient, settings.default_region)

    return await call_operation(
        pool,
        kind="decline_gift",
        key=key,
        request={"recipient": number, "gift_id": gift_id},
        value_type=GiftDeclined,
        query=_DECLINE_GIFT,
        args=lambda _now: (number, gift_id),
        clock=clock,
        settings=settings,
    )


_NEWEST_SENT = """
SELECT g.id FROM gifts g JOIN subscribers r ON r.id = g.recipient_id
WHERE g.sender_id = $1 AND g.status = 'pending' AND g.expires_at > $2
  AND ($3::text IS NULL OR r.msisdn = $3)
ORDER BY g.created_at DESC, g.id DESC LIMIT 1
FOR UPDATE OF g
"""


async def cancel_gift(
    pool: asyncpg.Pool,
    sender: str | None,
    gift_id: int | None = None,
    *,
    recipient: str | None = None,
    key: str,
    tell_sender: bool = True,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[GiftCancelled]:
    """The sender takes back a gift still pending: ``gift_id``, or else their newest
    pending gift (to ``recipient``, when given).

    The newest is chosen inside the operation, so a retry with the same key
    answers the first result instead of taking back the next gift. ``sender``
    None (an operator acting for them) takes back ``gift_id`` whoever sent it.
    Codes: ok, no_pending_gift, gift_expired, gift_not_pending (the last two
    with ``details["status"]``: accepted, declined, cancelled or expired).
    Both sides are told by SMS: the recipient ``gift_cancelled``, the sender
    ``gift_returned`` with ``reason: cancelled`` (an operator may cancel for them),
    unless ``tell_sender`` is False (a cancel by SMS: its reply says it all).
    """
    number = None if sender is None else _accounts.normalize(sender, settings.default_region)
    to = None if recipient is None else _accounts.normalize(recipient, settings.default_region)
    if number is None and gift_id is None:
        raise ValueError("cancel_gift needs the sender or the gift")

    async def body(op: Op) -> Outcome[GiftCancelled]:
        src: SubscriberRow | None
        if number is None:
            owner = await op.conn.fetchval("SELECT sender_id FROM gifts WHERE id = $1", gift_id)
            src = None if owner is None else await _accounts.subscriber_by_id(op.conn, owner)
        else:
            src = await _accounts.find_subscriber(op.conn, number)
        if src is None:
            return Outcome(Code.NO_PENDING_GIFT)
        op.subscriber_id = src.id
        chosen = gift_id
        if chosen is None:
            chosen = await op.conn.fetchval(_NEWEST_SENT, src.id, op.now, to)
            if chosen is None:
                return Outcome(Code.NO_PENDING_GIFT)
        row, code = await _resolve(op, "sender_id", src.id, chosen, "cancelled")
        if row is None:
            if code is Code.NO_PENDING_GIFT:
                return Outcome(code)
            status = await op.conn.fetchval("SELECT status FROM gifts WHERE id = $1", chosen)
            # A gift past its expiry that the sweeper has not reached yet is expired all the same.
            return Outcome(code, details={"status": "expired" if status == "pending" else status})
        _, available = await _return_to_sender(op, row)
        dst = await _accounts.subscriber_by_id(op.conn, row["recipient_id"])
        if tell_sender:
            await _accounts.emit(
                op, "gift_returned", src.msisdn,
                _gift_payload(src.language, row, recipient=dst.msisdn, reason="cancelled"),
            )  # fmt: skip
        await _accounts.emit(
            op, "gift_cancelled", dst.msisdn, _gift_payload(dst.language, row, sender=src.msisdn)
        )
        return Outcome(Code.OK, GiftCancelled(row["id"], row["points"], dst.msisdn, available))

    return await run_operation(
        pool,
        kind="cancel_gift",
        key=key,
        request={
            "sender": number,
            "gift_id": gift_id,
            # Absent unless given, so the requests stored before it still match.
            **({} if to is None else {"recipient": to}),
        },
        value_type=GiftCancelled,
        body=body,
        clock=clock,
        settings=settings,
    )


# -- the sweeper ------------------------------------------------------------------

_DUE_GIFTS = f"""
SELECT {_GIFT_COLUMNS} FROM gifts
WHERE status = 'pending' AND expires_at <= $1
ORDER BY expires_at, id LIMIT $2
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - constant column list


async def expire_gifts(
    pool: asyncpg.Pool,
    now: datetime | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> int:
    """Return gifts past their expiry to their senders; return how many.

    Gifts locked by a concurrent accept/decline/cancel are skipped (that
    transaction decides them; if it fails, the next run expires them). Each
    gift's expiry is its own operation with the key ``expire-gift:<id>``.
    """
    moment = now or clock.now()
    total = 0
    while True:
        count = await with_retries(settings, lambda: _expire_gift_batch(pool, moment, settings))
        total += count
        if count < settings.sweep_batch:
            return total
        await asyncio.sleep(0)


async def _expire_gift_batch(pool: asyncpg.Pool, moment: datetime, settings: LedgerSettings) -> int:
    async with pool.acquire() as conn, conn.transaction():
        due = await conn.fetch(_DUE_GIFTS, moment, settings.sweep_batch)
        if not due:
            return 0
        senders = {
            row["sender_id"]: await _accounts.subscriber_by_id(conn, row["sender_id"])
            for row in due
        }
        await _accounts.lock_accounts(conn, [s.account_id for s in senders.values()])
        for row in due:
            key = f"expire-gift:{row['id']}"
            op_pk = await begin_operation(
                conn, key, "expire_gift", request_hash("expire_gift", {"gift": row["id"]}), moment
            )
            assert op_pk is not None, f"gift {row['id']} was expired twice"
            sender = senders[row["sender_id"]]
            op = Op(conn, op_pk, key, moment, settings, subscriber_id=sender.id)
            await conn.execute(
                "UPDATE gifts SET status = 'expired', resolved_at = $2, resolve_operation_id = $3 "
                "WHERE id = $1 AND status = 'pending'",
                row["id"],
                moment,
                op_pk,
            )
            shares = await _accounts.consumed_by(conn, row["operation_id"])
            await _accounts.restore(op, sender.account_id, shares, "escrow")
            recipient = await _accounts.subscriber_by_id(conn, row["recipient_id"])
            await _accounts.emit(
                op, "gift_expired", recipient.msisdn,
                _gift_payload(recipient.language, row, sender=sender.msisdn),
            )  # fmt: skip
            await _accounts.emit(
                op, "gift_returned", sender.msisdn,
                _gift_payload(sender.language, row, recipient=recipient.msisdn),
            )  # fmt: skip
            await complete_operation(op, Outcome(Code.OK, details={"gift_id": row["id"]}))
        return len(due)
