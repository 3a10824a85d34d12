"""The notification outbox, as the SMS worker uses it.

Ledger operations write events here in their own transaction. A worker
``claim_due``s a batch (``FOR UPDATE SKIP LOCKED``, so several workers never
take the same row), sends them, then reports each with ``mark_sent`` or
``record_failure``. A claim leases the rows for ``settings.outbox_lease``: if
the worker dies before reporting, they become due again (delivery is
at-least-once). Failures back off exponentially and, after
``outbox_max_attempts`` claims, the message is parked as ``failed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

OutboxStatus = Literal["pending", "sent", "failed"]
EVENTS = (
    "gift_received",
    "gift_accepted",
    "gift_declined",
    "gift_cancelled",
    "gift_expired",
    "gift_returned",
    "reward_fulfilled",
    "reward_failed",
)
# Longest error text kept per message.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxMessage:
    """One notification to deliver. ``payload["language"]`` is the addressee's language."""

    id: int
    event: str
    msisdn: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


_COLUMNS = (
    "id, event, msisdn, payload, status, attempts, next_attempt_at, last_error, created_at, sent_at"
)


def _message(row: asyncpg.Record) -> OutboxMessage:
    values = dict(row)
    values["payload"] = json.loads(values["payload"])
    return OutboxMessage(**values)


async def claim_due(
    pool: asyncpg.Pool,
    *,
    limit: int = 50,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> list[OutboxMessage]:
    """Lease up to ``limit`` due pending messages, oldest due first; counts an attempt."""
    now = clock.now()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""
            UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2
            WHERE id IN (
                SELECT id FROM outbox
                WHERE status = 'pending' AND next_attempt_at <= $1
                ORDER BY next_attempt_at, id LIMIT $3
                FOR UPDATE SKIP LOCKED
            )
            RETURNING {_COLUMNS}
            """,  # noqa: S608 - constant column list
            now,
            now + settings.outbox_lease,
            limit,
        )
    return sorted((_message(row) for row in rows), key=lambda m: m.id)


async def mark_sent(pool: asyncpg.Pool, message_id: int, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Record a delivery; False when the message was not pending (already reported)."""
    async with pool.acquire() as conn:
        status = await conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = $2 WHERE id = $1 AND status = 'pending'",
            message_id,
            clock.now(),
        )
    return bool(status == "UPDATE 1")


def backoff(attempts: int, settings: LedgerSettings) -> timedelta:
    """Wait before the next try after ``attempts`` failed ones."""
    delay: timedelta = settings.outbox_backoff_base * (2 ** max(0, min(attempts - 1, 30)))
    return min(delay, settings.outbox_backoff_max)


async def record_failure(
    pool: asyncpg.Pool,
    message_id: int,
    error: str,
    *,
    permanent: bool = False,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> OutboxStatus | None:
    """Record a failed try: schedule the next with backoff, or park the message as failed.

    ``permanent`` parks at once (e.g. the number cannot receive SMS). Returns
    the message's new status, or None when it was not pending.
    """
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        attempts = await conn.fetchval(
            "SELECT attempts FROM outbox WHERE id = $1 AND status = 'pending' FOR UPDATE",
            message_id,
        )
        if attempts is None:
            return None
        park = permanent or attempts >= settings.outbox_max_attempts
        await conn.execute(
            "UPDATE outbox SET status = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
            message_id,
            "failed" if park else "pending",
            now if park else now + backoff(attempts, settings),
            error[:MAX_ERROR_CHARS],
        )
    return "failed" if park else "pending"


async def list_outbox(
    pool: asyncpg.Pool, status: OutboxStatus | None = None, *, limit: int = 100
) -> list[OutboxMessage]:
    """Messages (of one status, if given), oldest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM outbox WHERE $1::text IS NULL OR status = $1 "  # noqa: S608
            "ORDER BY id LIMIT $2",
            status,
            limit,
        )
    return [_message(row) for row in rows]
