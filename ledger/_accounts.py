"""Moving points inside an operation's transaction.

Rules every caller follows:

* A subscriber account is locked (``lock_accounts``, ids in ascending order)
  before its lots are read or its balance changes. Each public operation
  touches at most one subscriber balance except the sweepers, which lock
  several in id order; system accounts are never locked (their balances are
  derived from postings, see ``check``).
* Gift and redemption rows are taken before accounts, lots after accounts, so
  every transaction acquires locks in the same order: gift/redemption ->
  subscriber accounts (ascending id) -> lots.
* Every balance change writes a balanced pair of postings (subscriber entry
  with its balance after, system entry without) and the matching lot moves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ledger import msisdn
from ledger._tx import Conn, Op

SYSTEM_ACCOUNTS = ("issuance", "escrow", "redemption", "expired")

# ledger.msisdn's functions, remembered: phonenumbers takes 100-200 us to read
# a number, a gift reads two, and the same few numbers come back hop after hop.
# (An unreadable own number raises InvalidMsisdn, which is never cached.)
normalize = functools.lru_cache(maxsize=16384)(msisdn.normalize)
try_normalize = functools.lru_cache(maxsize=16384)(msisdn.try_normalize)


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    account_id: int
    msisdn: str
    status: str
    language: str
    enrolled_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class LotShare:
    """Points of one lot taken by (or returned to) an operation."""

    lot_id: int
    amount: int
    expires_at: datetime


_SUBSCRIBER = """
SELECT s.id, a.id AS account_id, s.msisdn, s.status, s.language, s.enrolled_at, s.created_at
FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id
"""


def _subscriber(row: asyncpg.Record | None) -> SubscriberRow | None:
    return None if row is None else SubscriberRow(**dict(row))


async def find_subscriber(conn: Conn, msisdn: str) -> SubscriberRow | None:
    return _subscriber(await conn.fetchrow(_SUBSCRIBER + "WHERE s.msisdn = $1", msisdn))


async def subscriber_by_id(conn: Conn, subscriber_id: int) -> SubscriberRow:
    found = _subscriber(await conn.fetchrow(_SUBSCRIBER + "WHERE s.id = $1", subscriber_id))
    assert found is not None
    return found


async def create_subscriber(
    conn: Conn,
    msisdn: str,
    *,
    status: str,
    language: str,
    now: datetime,
) -> SubscriberRow:
    """Insert a subscriber and their account, or return the existing one unchanged.

    A concurrent insert of the same number waits on the unique index; the
    loser then reads the winner's row.
    """
    row = await conn.fetchrow(
        """
        WITH s AS (
            INSERT INTO subscribers (msisdn, status, language, enrolled_at, created_at)
            VALUES ($1, $2, $3, CASE WHEN $2 = 'active' THEN $4::timestamptz END, $4)
            ON CONFLICT (msisdn) DO NOTHING
            RETURNING id
        )
        INSERT INTO accounts (kind, subscriber_id, balance)
        SELECT 'subscriber', id, 0 FROM s
        RETURNING subscriber_id
        """,
        msisdn,
        status,
        language,
        now,
    )
    if row is None:
        found = await find_subscriber(conn, msisdn)
    else:
        found = await subscriber_by_id(conn, row["subscriber_id"])
    assert found is not None
    return found


async def lock_accounts(conn: Conn, account_ids: Iterable[int]) -> dict[int, int]:
    """Lock subscriber accounts in ascending id order; return their balances."""
    ids = sorted(set(account_ids))
    rows = await conn.fetch(
        "SELECT id, balance FROM accounts WHERE id = ANY($1::bigint[]) AND kind = 'subscriber' "
        "ORDER BY id FOR UPDATE",
        ids,
    )
    if len(rows) != len(ids):
        raise LookupError(f"subscriber accounts not found: {ids}")
    return {row["id"]: row["balance"] for row in rows}


async def spendable_lots(conn: Conn, account_id: int, now: datetime) -> list[LotShare]:
    """Unexpired lots with points left, soonest-expiring first."""
    rows = await conn.fetch(
        "SELECT id, remaining, expires_at FROM point_lots "
        "WHERE account_id = $1 AND remaining > 0 AND expires_at > $2 "
        "ORDER BY expires_at, id",
        account_id,
        now,
    )
    return [LotShare(row["id"], row["remaining"], row["expires_at"]) for row in rows]


async def available_points(conn: Conn, account_id: int, now: datetime) -> int:
    """Points that can be spent at ``now`` (lots past expiry excluded)."""
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(remaining), 0)::bigint FROM point_lots "
        "WHERE account_id = $1 AND remaining > 0 AND expires_at > $2",
        account_id,
        now,
    )
    return total


_POST_PAIR = """
WITH changed AS (
    UPDATE accounts SET balance = balance + $3::bigint
    WHERE id = $2::bigint AND balance + $3::bigint >= 0
    RETURNING balance
)
INSERT INTO postings (operation_id, account_id, amount, balance_after, created_at)
SELECT $1::bigint, $2::bigint, $3::bigint, changed.balance, $5::timestamptz FROM changed
UNION ALL
SELECT $1::bigint, (SELECT id FROM accounts WHERE kind = $4::text), -$3::bigint, NULL,
       $5::timestamptz FROM changed
RETURNING balance_after
"""


async def _post(op: Op, account_id: int, amount: int, system_account: str) -> int | None:
    """Change a subscriber balance by ``amount`` against ``system_account``.

    The update is guarded (``balance + amount >= 0``); returns the new
    balance, or None when a debit would take the balance below zero.
    """
    assert system_account in SYSTEM_ACCOUNTS
    rows = await op.conn.fetch(_POST_PAIR, op.id, account_id, amount, system_account, op.now)
    if not rows:
        return None
    balance: int = next(row["balance_after"] for row in rows if row["balance_after"] is not None)
    return balance


async def post_between_system_accounts(op: Op, source: str, target: str, points: int) -> None:
    """Move ``points`` from one system account to another (no balance to guard)."""
    assert source in SYSTEM_ACCOUNTS
    assert target in SYSTEM_ACCOUNTS
    assert points > 0
    await op.conn.execute(
        "INSERT INTO postings (operation_id, account_id, amount, balance_after, created_at) "
        "SELECT $1, a.id, CASE a.kind WHEN $2 THEN -$4::bigint ELSE $4::bigint END, NULL, $5 "
        "FROM accounts a WHERE a.kind IN ($2, $3)",
        op.id,
        source,
        target,
        points,
        op.now,
    )


_MOVE_LOTS = """
WITH moves AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS m(lot_id, amount)
), changed AS (
    UPDATE point_lots l SET remaining = l.remaining + moves.amount
    FROM moves WHERE l.id = moves.lot_id
    RETURNING l.id
)
INSERT INTO lot_moves (operation_id, lot_id, amount, created_at)
SELECT $1, moves.lot_id, moves.amount, $4 FROM moves
WHERE (SELECT count(*) FROM changed) = cardinality($2::bigint[])
"""


async def _move_lots(op: Op, shares: Sequence[LotShare], sign: int) -> None:
    if not shares:
        return
    status = await op.conn.execute(
        _MOVE_LOTS,
        op.id,
        [share.lot_id for share in shares],
        [sign * share.amount for share in shares],
        op.now,
    )
    if status != f"INSERT 0 {len(shares)}":
        raise RuntimeError(f"lot moves did not apply: {status}")


@dataclass(frozen=True)
class Debit:
    """What a debit did: points still available after it, or why it could not."""

    done: bool
    available: int


async def debit(op: Op, account_id: int, points: int, system_account: str) -> Debit:
    """Take ``points`` from a locked account, soonest-expiring lots first.

    Writes nothing when fewer than ``points`` are available (``done`` False,
    ``available`` what there is).
    """
    assert points > 0
    lots = await spendable_lots(op.conn, account_id, op.now)
    available = sum(lot.amount for lot in lots)
    if available < points:
        return Debit(done=False, available=available)
    taken: list[LotShare] = []
    needed = points
    for lot in lots:
        if needed == 0:
            break
        part = min(needed, lot.amount)
        taken.append(LotShare(lot.lot_id, part, lot.expires_at))
        needed -= part
    await take_from_lots(op, account_id, taken, system_account)
    return Debit(done=True, available=available - points)


async def take_from_lots(
    op: Op, account_id: int, shares: Sequence[LotShare], system_account: str
) -> int:
    """Take the given lot shares from a locked account; return the new balance."""
    points = sum(share.amount for share in shares)
    balance = await _post(op, account_id, -points, system_account)
    if balance is None:  # cannot happen while the lots agree with the balance
        raise RuntimeError(f"account {account_id}: guarded debit refused despite enough lots")
    await _move_lots(op, shares, -1)
    return balance


async def consumed_by(conn: Conn, operation_id: int) -> list[LotShare]:
    """The lots an earlier operation consumed, with the points it took from each."""
    rows = await conn.fetch(
        "SELECT m.lot_id, -m.amount AS amount, l.expires_at "
        "FROM lot_moves m JOIN point_lots l ON l.id = m.lot_id "
        "WHERE m.operation_id = $1 AND m.amount < 0 ORDER BY m.id",
        operation_id,
    )
    return [LotShare(row["lot_id"], row["amount"], row["expires_at"]) for row in rows]


async def restore(op: Op, account_id: int, shares: Sequence[LotShare], system_account: str) -> int:
    """Put points back into the lots they were taken from; return the new balance."""
    points = sum(share.amount for share in shares)
    balance = await _post(op, account_id, points, system_account)
    assert balance is not None
    await _move_lots(op, shares, +1)
    return balance


async def credit_new_lots(
    op: Op,
    account_id: int,
    lots: Sequence[tuple[int, datetime, int | None]],
    system_account: str,
) -> int:
    """Credit new lots ``(amount, expires_at, source_lot_id)``; return the new balance."""
    points = sum(amount for amount, _, _ in lots)
    balance = await _post(op, account_id, points, system_account)
    assert balance is not None
    await op.conn.execute(
        "INSERT INTO point_lots "
        "(account_id, operation_id, source_lot_id, amount, remaining, expires_at, created_at) "
        "SELECT $1, $2, l.source, l.amount, l.amount, l.expires_at, $3 "
        "FROM unnest($4::bigint[], $5::timestamptz[], $6::bigint[]) "
        "AS l(amount, expires_at, source)",
        account_id,
        op.id,
        op.now,
        [amount for amount, _, _ in lots],
        [expires_at for _, expires_at, _ in lots],
        [source for _, _, source in lots],
    )
    return balance


async def emit(op: Op, event: str, msisdn: str, payload: dict[str, Any]) -> None:
    """Queue a notification, committed with the change that causes it."""
    await op.conn.execute(
        "INSERT INTO outbox (event, msisdn, payload, next_attempt_at, operation_id, created_at) "
        "VALUES ($1, $2, $3::jsonb, $4, $5, $4)",
        event,
        msisdn,
        json.dumps(payload, default=str),
        op.now,
        op.id,
    )


async def pending_gift_count(conn: Conn, recipient_id: int, now: datetime) -> int:
    """Gifts the recipient can still accept."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM gifts WHERE recipient_id = $1 AND status = 'pending' "
        "AND expires_at > $2",
        recipient_id,
        now,
    )
    return count
