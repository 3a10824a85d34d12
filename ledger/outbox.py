"""The notification outbox, as the SMS worker uses it.

Ledger operations write events here in their own transaction. A worker
``claim_due``s a batch (``FOR UPDATE SKIP LOCKED``, so several workers never
take the same row), sends them, then reports each with ``mark_sent`` or
``record_failure``. A claim leases the rows for ``settings.outbox_lease``: if
the worker dies before reporting, they become due again (delivery is
at-least-once). Failures back off exponentially and, after
``outbox_max_attempts`` claims, the message is parked as ``failed``.

A sent message may later get delivery reports from the SMS gateway
(``record_delivery_report``): each names the attempt it reports on, so a late
report of an earlier try never overrides the current one. A delivered report
confirms it; a failed one sends it back to ``pending`` with backoff (or parks
it when the failure is permanent or the attempts are spent).
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
#: What a delivery report says: the SMSC holds the message (phone off), took it,
#: the phone has it, or it was not delivered.
DlrStatus = Literal["buffered", "accepted", "delivered", "failed"]
#: What ``record_delivery_report`` did with a report.
DlrResult = Literal["delivered", "retrying", "parked", "progress", "duplicate", "stale", "unknown"]
FINAL_DLR: frozenset[str] = frozenset({"delivered", "failed"})
EVENTS = (
    "gift_received",
    "gift_accepted",
    "gift_declined",
    "gift_cancelled",
    "gift_expired",
    "gift_returned",
    "reward_fulfilled",
    "reward_failed",
    # Not caused by a ledger operation: a one-time code for the web sign-in.
    "login_code",
    # Queued by the expiry reminders (ledger.reminders), one per lot at most.
    "points_expiring",
)
# Longest error text kept per message.
MAX_ERROR_CHARS = 500
# Longest gateway answer kept with a delivery report.
MAX_DLR_DETAIL_CHARS = 200


@dataclass(frozen=True)
class DeliveryState:
    """The latest delivery report of a message: for which attempt, what and when."""

    status: DlrStatus
    attempt: int
    at: datetime
    detail: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``at`` in ISO 8601)."""
        return {
            "status": self.status,
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class OutboxMessage:
    """One notification to deliver. ``payload["language"]`` is the addressee's language.

    ``dlr`` is the latest delivery report (None until the gateway sends one).
    """

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
    dlr: DeliveryState | None = None


_COLUMNS = (
    "id, event, msisdn, payload, status, attempts, next_attempt_at, last_error, created_at, "
    "sent_at, dlr_status, dlr_attempt, dlr_at, dlr_detail"
)


def _message(row: asyncpg.Record) -> OutboxMessage:
    values = dict(row)
    values["payload"] = json.loads(values["payload"])
    status, attempt = values.pop("dlr_status"), values.pop("dlr_attempt")
    at, detail = values.pop("dlr_at"), values.pop("dlr_detail")
    dlr = DeliveryState(status, attempt, at, detail) if status is not None else None
    return OutboxMessage(**values, dlr=dlr)


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


async def queue_notification(
    pool: asyncpg.Pool,
    event: str,
    msisdn: str,
    payload: dict[str, Any],
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Queue a notification no ledger operation causes (a sign-in code); return its id.

    ``payload["language"]`` is the addressee's language, as for every message.
    It goes out through the same worker, gateway and retries as the others.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    now = clock.now()
    async with pool.acquire() as conn:
        message_id: int = await conn.fetchval(
            "INSERT INTO outbox (event, msisdn, payload, next_attempt_at, created_at) "
            "VALUES ($1, $2, $3::jsonb, $4, $4) RETURNING id",
            event,
            msisdn,
            json.dumps(payload, default=str),
            now,
        )
    return message_id


async def mark_sent(pool: asyncpg.Pool, message_id: int, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Record a delivery; False when the message was not pending (already reported).

    A failed delivery report on this very attempt that overtook the worker
    wins: the message stays due for its retry.
    """
    async with pool.acquire() as conn:
        status = await conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = $2 WHERE id = $1 AND status = 'pending' "
            "AND (dlr_status IS DISTINCT FROM 'failed' OR dlr_attempt <> attempts)",
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


async def record_delivery_report(
    pool: asyncpg.Pool,
    message_id: int,
    attempt: int,
    status: DlrStatus,
    *,
    permanent: bool = False,
    detail: str | None = None,
    at: datetime | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> DlrResult:
    """Record the gateway's report on attempt ``attempt`` of message ``message_id``.

    * ``delivered``: kept; a message still pending (the report overtook the
      worker's ``mark_sent``) is marked sent.
    * ``failed``: the message goes back to ``pending`` with backoff, or is
      parked as ``failed`` when ``permanent`` or its attempts are spent.
    * ``buffered`` / ``accepted`` (progress): kept while no final report is.

    The first final report of an attempt decides it; later ones are
    ``duplicate``. A report on another attempt than the latest is ``stale``
    and a message that does not exist ``unknown``: both change nothing.
    ``at`` is when the gateway says it happened (default: now).
    """
    now = clock.now()
    at = at or now
    detail = detail[:MAX_DLR_DETAIL_CHARS] if detail else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, attempts, dlr_status, dlr_attempt FROM outbox WHERE id = $1 FOR UPDATE",
            message_id,
        )
        if row is None:
            return "unknown"
        if attempt != row["attempts"]:
            return "stale"
        decided = row["dlr_attempt"] == attempt and row["dlr_status"] in FINAL_DLR
        if decided or (row["dlr_attempt"] == attempt and row["dlr_status"] == status):
            return "duplicate"
        await conn.execute(
            "UPDATE outbox SET dlr_status = $2, dlr_attempt = $3, dlr_at = $4, dlr_detail = $5 "
            "WHERE id = $1",
            message_id,
            status,
            attempt,
            at,
            detail,
        )
        if status == "delivered":
            await conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = coalesce(sent_at, $2) "
                "WHERE id = $1 AND status = 'pending'",
                message_id,
                now,
            )
            return "delivered"
        if status != "failed":
            return "progress"
        park = permanent or row["attempts"] >= settings.outbox_max_attempts
        reason = "delivery report: not delivered" + (f" ({detail})" if detail else "")
        await conn.execute(
            "UPDATE outbox SET status = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
            message_id,
            "failed" if park else "pending",
            now if park else now + backoff(row["attempts"], settings),
            reason[:MAX_ERROR_CHARS],
        )
    return "parked" if park else "retrying"
