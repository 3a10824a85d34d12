"""Reminders of points about to expire: one SMS per lot, never twice.

``remind_expiring`` claims, in one transaction, up to ``batch`` lots of active
members that still hold points and expire within the window
(``FOR UPDATE SKIP LOCKED``: concurrent runs take different lots), marks them
``reminded_at`` and queues the outbox notifications in the same transaction.
A crash before commit leaves the lots unclaimed; a run after commit finds
them reminded. Lots of one member expiring the same calendar day (programme
time zone) share one SMS that names their points together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from ledger._tx import with_retries
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

#: The outbox event (and ``sms.notifications`` template) of a reminder.
REMINDER_EVENT = "points_expiring"

_CLAIM = """
WITH due AS (
    SELECT l.id FROM point_lots l
    JOIN accounts a ON a.id = l.account_id
    JOIN subscribers s ON s.id = a.subscriber_id
    WHERE l.remaining > 0 AND l.reminded_at IS NULL
      AND l.expires_at > $1 AND l.expires_at <= $2
      AND s.status = 'active'
    ORDER BY l.expires_at, l.id
    LIMIT $3
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE point_lots l SET reminded_at = $1
FROM due, accounts a, subscribers s
WHERE l.id = due.id AND a.id = l.account_id AND s.id = a.subscriber_id
RETURNING l.id, l.remaining, l.expires_at, s.msisdn, s.language
"""
_QUEUE = """
INSERT INTO outbox (event, msisdn, payload, next_attempt_at, created_at)
SELECT $1, m.msisdn, m.payload, $2, $2
FROM unnest($3::text[], $4::jsonb[]) AS m(msisdn, payload)
"""


@dataclass(frozen=True)
class ReminderRun:
    """What one pass did: lots claimed and SMS queued for them."""

    lots: int
    messages: int


async def remind_expiring(
    pool: asyncpg.Pool,
    *,
    within: timedelta,
    batch: int,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> ReminderRun:
    """One bounded pass: remind of up to ``batch`` lots expiring within ``within`` from now.

    Each SMS payload holds the member's ``language``, the ``points`` (the
    lots' remaining points at the time of the reminder), ``expires_at`` (the
    earliest of the lots' moments, on the same local day) and the ``lots``.
    """
    if batch <= 0:
        raise ValueError("batch must be positive")
    if within <= timedelta(0):
        return ReminderRun(0, 0)
    return await with_retries(settings, lambda: _pass(pool, within, batch, clock, settings))


async def _pass(
    pool: asyncpg.Pool,
    within: timedelta,
    batch: int,
    clock: Clock,
    settings: LedgerSettings,
) -> ReminderRun:
    zone = ZoneInfo(settings.timezone)
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_CLAIM, now, now + within, batch)
        groups: dict[tuple[str, date], list[asyncpg.Record]] = {}
        for row in rows:
            day = row["expires_at"].astimezone(zone).date()
            groups.setdefault((row["msisdn"], day), []).append(row)
        numbers, payloads = [], []
        for (msisdn, _day), lots in sorted(groups.items()):
            first: datetime = min(lot["expires_at"] for lot in lots)
            numbers.append(msisdn)
            payloads.append(
                json.dumps(
                    {
                        "language": lots[0]["language"],
                        "points": sum(lot["remaining"] for lot in lots),
                        "expires_at": first.isoformat(),
                        "lots": sorted(lot["id"] for lot in lots),
                    }
                )
            )
        if numbers:
            await conn.execute(_QUEUE, REMINDER_EVENT, now, numbers, payloads)
    return ReminderRun(len(rows), len(numbers))
