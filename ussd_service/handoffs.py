"""Handoffs to human operators: durable records in PostgreSQL.

A handoff is written once per (session, hop) thanks to its key, so a retried
hop never queues a caller twice. When PostgreSQL is down the request waits in
a Redis list and is written when the database answers again, so an outage
never loses a caller who asked for a person.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisClusterException

from session_store import RedisClient
from ussd_service.deadlines import within
from ussd_service.hop import HandoffNeeded, HandoffSink
from ussd_service.operations import UNAVAILABLE_ERRORS
from ussd_service.redis_keys import DEFERRED_HANDOFFS_KEY

log = structlog.get_logger(__name__)

STATUSES = ("waiting", "claimed", "closed")
# Handoffs written while PostgreSQL was unreachable wait here.
PENDING_KEY = DEFERRED_HANDOFFS_KEY
FLUSH_INTERVAL_S = 5.0
LIST_LIMIT = 200
# Writing a handoff must leave room in the hop's budget for the reply.
WRITE_TIMEOUT_S = 1.0
BALANCE_FIELDS = ("available", "pending_in", "pending_out")


@dataclass(frozen=True)
class HandoffRequest:
    """What the operator needs to know about a caller handed over."""

    key: str
    msisdn: str
    channel: str
    language: str
    reason: str
    breadcrumb: Sequence[str]
    balance: Mapping[str, Any] | None = None


_INSERT = """
INSERT INTO handoffs (handoff_key, msisdn, channel, language, reason, breadcrumb, balance)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
ON CONFLICT (handoff_key) DO UPDATE SET handoff_key = EXCLUDED.handoff_key
RETURNING id
"""


async def record_handoff(pool: asyncpg.Pool, request: HandoffRequest) -> int:
    """Write the handoff (once per key) and return its id."""
    handoff_id = await pool.fetchval(
        _INSERT,
        request.key,
        request.msisdn,
        request.channel,
        request.language,
        request.reason,
        json.dumps(list(request.breadcrumb)),
        json.dumps(dict(request.balance)) if request.balance is not None else None,
    )
    return int(handoff_id)


async def defer_handoff(redis: RedisClient, request: HandoffRequest) -> None:
    """Keep a handoff in Redis until PostgreSQL can take it."""
    await redis.rpush(PENDING_KEY, json.dumps(asdict(request)))


async def flush_deferred(redis: RedisClient, pool: asyncpg.Pool) -> int:
    """Move deferred handoffs into PostgreSQL; return how many were written.

    Each entry is removed only after it was written, and writing is
    idempotent by key, so a crash in between at worst writes it again. The
    entry is removed by value (LREM), not popped: with several processes
    flushing at once, a pop could drop another entry not yet written.
    """
    written = 0
    while True:
        raw = await redis.lindex(PENDING_KEY, 0)
        if raw is None:
            return written
        data = json.loads(raw)
        await record_handoff(pool, HandoffRequest(**data))
        await redis.lrem(PENDING_KEY, 1, raw.decode() if isinstance(raw, bytes) else raw)
        written += 1


async def flush_deferred_forever(redis: RedisClient, pool: asyncpg.Pool) -> None:
    """Background task: retry deferred handoffs every few seconds."""
    while True:
        try:
            written = await flush_deferred(redis, pool)
            if written:
                log.info("deferred_handoffs_written", count=written)
        except (
            OSError, asyncpg.PostgresError, aioredis.RedisError, RedisClusterException, TimeoutError
        ) as exc:
            log.warning("deferred_handoffs_waiting", error=type(exc).__name__)
        await asyncio.sleep(FLUSH_INTERVAL_S)


def handoff_sink(pool: asyncpg.Pool, redis: RedisClient) -> HandoffSink:
    """What the dialogue calls when a session ends at an operator."""

    async def sink(needed: HandoffNeeded) -> int | None:
        snapshot = await needed.ops("balance", {})
        balance = {k: snapshot.data[k] for k in BALANCE_FIELDS} if snapshot.ok else None
        request = HandoffRequest(
            key=needed.key,
            msisdn=needed.hop.msisdn,
            channel=needed.hop.channel,
            language=needed.language,
            reason=needed.reason,
            breadcrumb=needed.breadcrumb,
            balance=balance,
        )
        try:
            return await within(record_handoff(pool, request), WRITE_TIMEOUT_S)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("handoff_deferred", reason=needed.reason, error=type(exc).__name__)
            await defer_handoff(redis, request)
            return None

    return sink


def _row(record: asyncpg.Record) -> dict[str, Any]:
    out = dict(record)
    out["breadcrumb"] = json.loads(out["breadcrumb"])
    out["balance"] = json.loads(out["balance"]) if out["balance"] is not None else None
    for name in ("created_at", "claimed_at", "closed_at"):
        value = out.get(name)
        out[name] = value.isoformat() if isinstance(value, datetime) else None
    return out


_COLUMNS = (
    "id, msisdn, channel, language, reason, breadcrumb, balance, status, claimed_by, "
    "created_at, claimed_at, closed_at"
)


async def list_handoffs(pool: asyncpg.Pool, status: str | None) -> list[dict[str, Any]]:
    """Handoffs, oldest first, optionally of one status."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM handoffs"  # noqa: S608 - constant column list
        " WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at, id LIMIT $2",
        status,
        LIST_LIMIT,
    )
    return [_row(r) for r in rows]


async def claim_handoff(
    pool: asyncpg.Pool, handoff_id: int, operator: str
) -> dict[str, Any] | None:
    """An operator takes a waiting handoff; None when it is not waiting (or absent)."""
    row = await pool.fetchrow(
        f"UPDATE handoffs SET status = 'claimed', claimed_by = $2, claimed_at = now()"  # noqa: S608
        f" WHERE id = $1 AND status = 'waiting' RETURNING {_COLUMNS}",
        handoff_id,
        operator,
    )
    return _row(row) if row is not None else None


async def close_handoff(pool: asyncpg.Pool, handoff_id: int) -> dict[str, Any] | None:
    """Finish a waiting or claimed handoff; None when already closed (or absent)."""
    row = await pool.fetchrow(
        f"UPDATE handoffs SET status = 'closed', closed_at = now()"  # noqa: S608
        f" WHERE id = $1 AND status <> 'closed' RETURNING {_COLUMNS}",
        handoff_id,
    )
    return _row(row) if row is not None else None


async def get_handoff(pool: asyncpg.Pool, handoff_id: int) -> dict[str, Any] | None:
    """One handoff by id."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM handoffs WHERE id = $1",  # noqa: S608
        handoff_id,
    )
    return _row(row) if row is not None else None
