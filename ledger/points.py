"""Balance, history, accrual and the expiry of points."""

from __future__ import annotations

import calendar
import uuid
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import asyncpg

from ledger import _accounts
from ledger._accounts import SubscriberRow
from ledger._tx import (
    Conn,
    Op,
    begin_operation,
    complete_operation,
    request_hash,
    run_operation,
    with_retries,
)
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.msisdn import normalize
from ledger.results import (
    Accrual,
    Balance,
    Expiry,
    ExpirySchedule,
    History,
    HistoryItem,
    Outcome,
)
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

# History kind of a subscriber entry, by operation kind.
HISTORY_KINDS = {
    "accrue": "accrual",
    "redeem": "redemption",
    "fail_redemption": "redemption_refund",
    "gift": "gift_sent",
    "accept_gift": "gift_received",
    "decline_gift": "gift_returned",
    "cancel_gift": "gift_returned",
    "expire_gift": "gift_returned",
    "expire_points": "expiry",
}


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months later (clamped to month end)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def enrolled_code(sub: SubscriberRow | None) -> Code:
    """OK for an active subscriber, else the rejection that applies."""
    if sub is None or sub.status == "not_enrolled":
        return Code.NOT_ENROLLED
    if sub.status == "blocked":
        return Code.BLOCKED
    return Code.OK


_BALANCE = """
SELECT
    (SELECT coalesce(sum(remaining), 0) FROM point_lots
      WHERE account_id = $1 AND remaining > 0 AND expires_at > $3)::bigint AS available,
    (SELECT coalesce(sum(points), 0) FROM gifts
      WHERE recipient_id = $2 AND status = 'pending' AND expires_at > $3)::bigint AS pending_in,
    ((SELECT coalesce(sum(points), 0) FROM gifts WHERE sender_id = $2 AND status = 'pending')
     + (SELECT coalesce(sum(points), 0) FROM redemptions
         WHERE subscriber_id = $2 AND status = 'reserved'))::bigint AS pending_out
"""


async def read_balance(
    conn: Conn, sub: SubscriberRow, now: datetime, settings: LedgerSettings
) -> Balance:
    """The balance of ``sub`` at ``now`` (no checks of status)."""
    row = await conn.fetchrow(_BALANCE, sub.account_id, sub.id, now)
    assert row is not None
    lots = await _accounts.spendable_lots(conn, sub.account_id, now)
    expiring_points, expiring_at, expiring_date = 0, None, None
    if lots:
        zone = ZoneInfo(settings.timezone)
        expiring_at = lots[0].expires_at
        expiring_date = expiring_at.astimezone(zone).date()
        expiring_points = sum(
            lot.amount for lot in lots if lot.expires_at.astimezone(zone).date() == expiring_date
        )
    return Balance(
        available=row["available"],
        pending_in=row["pending_in"],
        pending_out=row["pending_out"],
        expiring_points=expiring_points,
        expiring_at=expiring_at,
        expiring_date=expiring_date,
    )


async def balance(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Balance]:
    """Available, pending and soonest-expiring points. Codes: ok, not_enrolled, blocked."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        sub = await _accounts.find_subscriber(conn, number)
        code = enrolled_code(sub)
        if sub is None or code is not Code.OK:
            return Outcome(code)
        return Outcome(Code.OK, await read_balance(conn, sub, clock.now(), settings))


async def history(
    pool: asyncpg.Pool,
    msisdn: str,
    limit: int | None = None,
    *,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[History]:
    """The latest movements on the subscriber's account, newest first.

    Codes: ok, not_enrolled (a blocked subscriber still sees their history).
    """
    number = normalize(msisdn, settings.default_region)
    wanted = settings.history_default_limit if limit is None else limit
    wanted = max(1, min(wanted, settings.history_max_limit))
    async with pool.acquire() as conn:
        sub = await _accounts.find_subscriber(conn, number)
        if sub is None or sub.status == "not_enrolled":
            return Outcome(Code.NOT_ENROLLED)
        rows = await conn.fetch(
            "SELECT o.kind, o.op_id, p.amount, p.balance_after, p.created_at "
            "FROM postings p JOIN operations o ON o.id = p.operation_id "
            "WHERE p.account_id = $1 ORDER BY p.id DESC LIMIT $2",
            sub.account_id,
            wanted,
        )
    items = [
        HistoryItem(
            kind=HISTORY_KINDS.get(row["kind"], row["kind"]),
            points=row["amount"],
            created_at=row["created_at"],
            balance_after=row["balance_after"],
            operation_id=row["op_id"],
        )
        for row in rows
    ]
    return Outcome(Code.OK, History(items))


async def expiry_schedule(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[ExpirySchedule]:
    """When the available points expire: points per calendar day, soonest first.

    Codes: ok, not_enrolled (a blocked subscriber still sees theirs).
    """
    number = normalize(msisdn, settings.default_region)
    zone = ZoneInfo(settings.timezone)
    async with pool.acquire() as conn:
        sub = await _accounts.find_subscriber(conn, number)
        if sub is None or sub.status == "not_enrolled":
            return Outcome(Code.NOT_ENROLLED)
        lots = await _accounts.spendable_lots(conn, sub.account_id, clock.now())
    days: dict[date, int] = {}
    for lot in lots:
        day = lot.expires_at.astimezone(zone).date()
        days[day] = days.get(day, 0) + lot.amount
    return Outcome(Code.OK, ExpirySchedule([Expiry(day, points) for day, points in days.items()]))


def end_of_day(day: date, settings: LedgerSettings) -> datetime:
    """The last moment of ``day`` in the programme's time zone (a plain expiry date)."""
    return datetime.combine(day, time.max, tzinfo=ZoneInfo(settings.timezone))


def check_expiry(expiry: datetime, now: datetime, settings: LedgerSettings) -> None:
    """Raise ValueError unless ``expiry`` is after ``now`` and within the horizon.

    Aware datetimes compare without conversion, so even year 1 or 9999 in
    any offset is refused here rather than overflowing later.
    """
    if expiry <= now:
        raise ValueError("expires_at must be in the future")
    months = settings.points_max_validity_months
    latest = add_months(now, months)
    if expiry > latest:
        raise ValueError(
            f"expires_at must be within {months} months from now (by {latest:%Y-%m-%d})"
        )


async def accrue(
    pool: asyncpg.Pool,
    msisdn: str,
    points: int,
    *,
    key: str,
    reason: str | None = None,
    expires_at: datetime | date | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Accrual]:
    """Credit points (billing, operators) as a new lot.

    The lot expires at ``expires_at`` (a plain date: the end of that day in
    the programme's time zone), by default ``points_validity_months`` after
    now. An expiry in the past or beyond ``points_max_validity_months``
    raises ValueError. Codes: ok, not_enrolled, blocked.
    """
    number = normalize(msisdn, settings.default_region)
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise ValueError(f"points must be a positive whole number, not {points!r}")
    named_expiry: datetime | None = None
    if isinstance(expires_at, datetime):
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise ValueError("expires_at must be timezone-aware")
        named_expiry = expires_at
    elif isinstance(expires_at, date):
        named_expiry = end_of_day(expires_at, settings)
    elif expires_at is not None:
        raise ValueError(f"expires_at must be a date or datetime, not {expires_at!r}")

    async def body(op: Op) -> Outcome[Accrual]:
        sub = await _accounts.find_subscriber(op.conn, number)
        code = enrolled_code(sub)
        if sub is None or code is not Code.OK:
            return Outcome(code)
        op.subscriber_id = sub.id
        expiry = named_expiry or add_months(op.now, settings.points_validity_months)
        # Checked here, not before the operation: a retry of an accepted
        # accrual gets its stored answer even once the date has passed.
        check_expiry(expiry, op.now, settings)
        await _accounts.lock_accounts(op.conn, [sub.account_id])
        await _accounts.credit_new_lots(op, sub.account_id, [(points, expiry, None)], "issuance")
        available = await _accounts.available_points(op.conn, sub.account_id, op.now)
        return Outcome(Code.OK, Accrual(number, points, expiry, available))

    return await run_operation(
        pool,
        kind="accrue",
        key=key,
        request={"msisdn": number, "points": points, "reason": reason, "expires_at": expires_at},
        value_type=Accrual,
        body=body,
        clock=clock,
        settings=settings,
    )


async def expire_points(
    pool: asyncpg.Pool,
    now: datetime | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> int:
    """Move points of lots past their expiry to the expired account; return how many.

    Accounts busy in another transaction are skipped (``SKIP LOCKED``) and
    caught on the next run; balances never depend on this running on time,
    since expired lots are not available for spending anyway. Each account's
    expiry is one operation.
    """
    moment = now or clock.now()
    total = 0
    while True:
        expired, locked = await with_retries(
            settings, lambda: _expire_points_batch(pool, moment, settings)
        )
        total += expired
        if locked < settings.sweep_batch:
            return total


async def _expire_points_batch(
    pool: asyncpg.Pool, moment: datetime, settings: LedgerSettings
) -> tuple[int, int]:
    async with pool.acquire() as conn, conn.transaction():
        account_ids = await conn.fetch(
            "SELECT id, subscriber_id FROM accounts WHERE id IN ("
            "  SELECT DISTINCT account_id FROM point_lots WHERE remaining > 0 AND expires_at <= $1"
            ") ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            moment,
            settings.sweep_batch,
        )
        expired = 0
        for row in account_ids:
            account_id = row["id"]
            due = await conn.fetch(
                "SELECT id, remaining, expires_at FROM point_lots "
                "WHERE account_id = $1 AND remaining > 0 AND expires_at <= $2 ORDER BY id",
                account_id,
                moment,
            )
            shares = [
                _accounts.LotShare(lot["id"], lot["remaining"], lot["expires_at"]) for lot in due
            ]
            points = sum(share.amount for share in shares)
            key = f"expire-points:{account_id}:{uuid.uuid4().hex}"
            op_pk = await begin_operation(
                conn, key, "expire_points", request_hash("expire_points", {"key": key}), moment
            )
            assert op_pk is not None
            op = Op(conn, op_pk, key, moment, settings, subscriber_id=row["subscriber_id"])
            await _accounts.take_from_lots(op, account_id, shares, "expired")
            await complete_operation(
                op, Outcome(Code.OK, details={"points": points, "lots": len(shares)})
            )
            expired += points
        return expired, len(account_ids)
