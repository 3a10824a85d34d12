"""One mutating operation = one transaction, idempotent, retried on deadlock.

``run_operation`` is the only way the public mutating functions touch the
database:

1. In a new transaction it inserts the ``operations`` row for the idempotency
   key (``ON CONFLICT DO NOTHING``). A concurrent request with the same key
   waits on the unique index until the first one commits or rolls back.
2. If the key was already recorded, it returns the stored result (same
   request) or ``idempotency_conflict`` (different request) and changes
   nothing.
3. Otherwise it runs the operation's body, stores the outcome (including a
   rejection) in the same row and commits.

Deadlocks and serialization failures roll the whole transaction back and run
it again from step 1 with the same key, so a retry can never double an effect.

``call_operation`` does the same in one round trip: the operation is a stored
PL/pgSQL function (migration 0007) that runs steps 1-3 itself, called as one
statement (its own transaction), answering ``(state, result)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ledger.clock import Clock
from ledger.errors import Code, TooManyRetries
from ledger.results import Outcome, decode, encode
from ledger.settings import LedgerSettings

V = TypeVar("V")
R = TypeVar("R")

# Longest idempotency key accepted (the column's CHECK says the same).
MAX_KEY_LENGTH = 200
# A connection, direct or borrowed from a pool.
Conn = asyncpg.Connection | PoolConnectionProxy

RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


@dataclass
class Op:
    """The running operation, handed to a body inside its transaction."""

    conn: Conn
    id: int
    key: str
    now: datetime
    settings: LedgerSettings
    # The subscriber the operation is about, recorded with it (for audits).
    subscriber_id: int | None = None


def request_hash(kind: str, request: dict[str, Any]) -> str:
    """A stable digest of what was asked, to tell a retry from a different request."""
    canonical = json.dumps([kind, request], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_INSERT_OPERATION = """
INSERT INTO operations (op_id, kind, request_hash, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (op_id) DO NOTHING
RETURNING id
"""
_COMPLETE_OPERATION = """
UPDATE operations SET status = $2, code = $3, result = $4::jsonb, subscriber_id = $5 WHERE id = $1
"""


async def begin_operation(
    conn: Conn, key: str, kind: str, digest: str, now: datetime
) -> int | None:
    """Insert the operation row; None when the key is already recorded."""
    op_pk: int | None = await conn.fetchval(_INSERT_OPERATION, key, kind, digest, now)
    return op_pk


async def complete_operation(op: Op, outcome: Outcome[Any]) -> dict[str, Any]:
    """Store the outcome with the operation; return the stored JSON."""
    stored = encode(outcome)
    await op.conn.execute(
        _COMPLETE_OPERATION,
        op.id,
        "succeeded" if outcome.ok else "rejected",
        outcome.code.value,
        json.dumps(stored),
        op.subscriber_id,
    )
    return stored


async def with_retries(settings: LedgerSettings, attempt: Callable[[], Awaitable[R]]) -> R:
    """Run ``attempt`` (one whole transaction) again on deadlock/serialization errors."""
    for number in range(settings.max_attempts):
        try:
            return await attempt()
        except RETRYABLE_ERRORS:
            # Jittered exponential backoff so the contenders do not meet again.
            base = settings.retry_base_delay.total_seconds() * (2 ** min(number, 6))
            await asyncio.sleep(random.uniform(0, base))  # noqa: S311 - jitter, not security
    raise TooManyRetries(f"gave up after {settings.max_attempts} attempts")


async def call_operation(
    pool: asyncpg.Pool,
    *,
    kind: str,
    key: str,
    request: dict[str, Any],
    value_type: type[V],
    query: str,
    args: Callable[[datetime], Sequence[Any]],
    clock: Clock,
    settings: LedgerSettings,
) -> Outcome[V]:
    """Run a stored ledger function once for ``key``; see the module docstring.

    ``query`` calls the function with ``$1`` key, ``$2`` request hash, ``$3``
    now, then ``args(now)``; it answers ``state`` ('new', 'replayed' or
    'conflict') and ``result`` (the stored outcome's JSON).
    """
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"an idempotency key of 1 to {MAX_KEY_LENGTH} characters is required")
    digest = request_hash(kind, request)

    async def attempt() -> Outcome[V]:
        now = clock.now()
        # One statement, so one transaction: asyncpg prepares it once per
        # connection and reuses it (statement cache).
        row = await pool.fetchrow(query, key, digest, now, *args(now))
        assert row is not None
        state, result = row["state"], row["result"]
        if state == "conflict":
            return Outcome(Code.IDEMPOTENCY_CONFLICT)
        return decode(json.loads(result), value_type, replayed=state == "replayed")

    return await with_retries(settings, attempt)


async def run_operation(
    pool: asyncpg.Pool,
    *,
    kind: str,
    key: str,
    request: dict[str, Any],
    value_type: type[V],
    body: Callable[[Op], Awaitable[Outcome[V]]],
    clock: Clock,
    settings: LedgerSettings,
) -> Outcome[V]:
    """Run ``body`` once for ``key``; see the module docstring."""
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"an idempotency key of 1 to {MAX_KEY_LENGTH} characters is required")
    digest = request_hash(kind, request)

    async def attempt() -> Outcome[V]:
        async with pool.acquire() as conn, conn.transaction():
            now = clock.now()
            op_pk = await begin_operation(conn, key, kind, digest, now)
            if op_pk is None:
                row = await conn.fetchrow(
                    "SELECT request_hash, result FROM operations WHERE op_id = $1", key
                )
                assert row is not None
                assert row["result"] is not None
                if row["request_hash"] != digest:
                    return Outcome(Code.IDEMPOTENCY_CONFLICT)
                return decode(json.loads(row["result"]), value_type, replayed=True)
            op = Op(conn=conn, id=op_pk, key=key, now=now, settings=settings)
            outcome = await body(op)
            stored = await complete_operation(op, outcome)
            # The first answer goes through the same decoding as a replay, so
            # the two compare equal.
            return decode(stored, value_type)

    return await with_retries(settings, attempt)
