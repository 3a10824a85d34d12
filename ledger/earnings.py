"""Points earned by events (top-ups, tenure, joining), as the earning rules grant them.

The rules themselves (rates, rounding, validity) are the caller's: it turns an
event into ``Grant``s and ``earn`` credits them in one operation, keyed by the
event's idempotency key. What depends on the ledger's state is decided here,
inside the transaction and under the member's account lock: a rule's monthly
cap (the points it already granted in the event's calendar month) and the
joining bonus, granted once per member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from ledger import _accounts
from ledger._tx import Op, run_operation
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.msisdn import normalize
from ledger.points import check_expiry, enrolled_code
from ledger.results import Outcome
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

EventKind = Literal["topup", "tenure", "joined"]
EVENT_KINDS: tuple[EventKind, ...] = ("topup", "tenure", "joined")


@dataclass(frozen=True)
class Grant:
    """What one rule grants for an event, before the ledger's caps.

    ``points`` may be 0 (a top-up too small for a whole point): nothing is
    credited and the answer says why. ``month_cap`` bounds what the rule
    grants one member per calendar month of the event (programme time zone).
    """

    rule: str
    points: int
    expires_at: datetime
    month_cap: int | None = None
    # Why ``points`` is what it is, when the rule itself cut it (per-event cap).
    note: str | None = None


@dataclass(frozen=True)
class Earning:
    """The answer to an event: the total credited and the available balance after.

    The accruals made (``rule``, ``points``, ``expires_at``) and the rules
    that granted nothing (``rule``, ``reason``) are in the outcome's
    ``details["accruals"]`` and ``details["skipped"]`` (stored results hold
    scalars only).
    """

    msisdn: str
    kind: str
    points: int
    available: int


def _month_bounds(moment: datetime, settings: LedgerSettings) -> tuple[datetime, datetime]:
    """The calendar month of ``moment`` in the programme's time zone, as aware bounds."""
    local = moment.astimezone(ZoneInfo(settings.timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=year, month=month)


async def earn(
    pool: asyncpg.Pool,
    msisdn: str,
    kind: EventKind,
    occurred_at: datetime,
    grants: Sequence[Grant],
    *,
    key: str,
    request: dict[str, Any],
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Earning]:
    """Credit ``grants`` for one event as one operation (idempotent on ``key``).

    ``request`` is the event as received: a retry with the same key and the
    same request gets the first answer (even after the rules changed); a
    different request under the same key is ``idempotency_conflict``. Each
    grant becomes a lot expiring at its ``expires_at``; an expiry already
    past or beyond ``points_max_validity_months`` raises ValueError (nothing
    is recorded). Codes: ok, not_enrolled, blocked.
    """
    number = normalize(msisdn, settings.default_region)
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if occurred_at.utcoffset() is None:
        raise ValueError("occurred_at must be timezone-aware")
    for grant in grants:
        if grant.points < 0 or (grant.month_cap is not None and grant.month_cap <= 0):
            raise ValueError(f"rule {grant.rule}: points and caps must be positive")

    async def body(op: Op) -> Outcome[Earning]:
        sub = await _accounts.find_subscriber(op.conn, number)
        code = enrolled_code(sub)
        if sub is None or code is not Code.OK:
            return Outcome(code)
        op.subscriber_id = sub.id
        for grant in grants:
            # Checked here, as in accrue: a retry gets its stored answer even
            # once the event is too old to earn anything new.
            check_expiry(grant.expires_at, op.now, settings)
        await _accounts.lock_accounts(op.conn, [sub.account_id])
        accruals: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for grant in grants:
            points, reason = await _after_caps(op, sub.id, kind, occurred_at, grant)
            if points <= 0:
                skipped.append({"rule": grant.rule, "reason": reason})
                continue
            await _accounts.credit_new_lots(
                op, sub.account_id, [(points, grant.expires_at, None)], "issuance"
            )
            lot_id = await op.conn.fetchval(
                "SELECT max(id) FROM point_lots WHERE operation_id = $1", op.id
            )
            await op.conn.execute(
                "INSERT INTO earnings (operation_id, subscriber_id, lot_id, kind, rule, points, "
                "occurred_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                op.id,
                sub.id,
                lot_id,
                kind,
                grant.rule,
                points,
                occurred_at,
                op.now,
            )
            accrual: dict[str, Any] = {
                "rule": grant.rule,
                "points": points,
                "expires_at": grant.expires_at.isoformat(),
            }
            if reason is not None:
                accrual["capped"] = reason
            accruals.append(accrual)
        available = await _accounts.available_points(op.conn, sub.account_id, op.now)
        total = sum(int(a["points"]) for a in accruals)
        return Outcome(
            Code.OK,
            Earning(number, kind, total, available),
            details={"accruals": accruals, "skipped": skipped},
        )

    return await run_operation(
        pool,
        # An accrual like any other for the checks and the history; the
        # request (the event) tells it apart.
        kind="accrue",
        key=key,
        request=request,
        value_type=Earning,
        body=body,
        clock=clock,
        settings=settings,
    )


async def _after_caps(
    op: Op, subscriber_id: int, kind: str, occurred_at: datetime, grant: Grant
) -> tuple[int, str | None]:
    """The points ``grant`` may credit now, and why they are fewer (None: not cut here)."""
    if grant.points == 0:
        return 0, grant.note or "less than one point"
    if kind == "joined":
        already = await op.conn.fetchval(
            "SELECT 1 FROM earnings WHERE subscriber_id = $1 AND kind = 'joined'", subscriber_id
        )
        if already:
            return 0, "the joining bonus is granted once per member"
    if grant.month_cap is None:
        return grant.points, grant.note
    start, end = _month_bounds(occurred_at, op.settings)
    earned: int = await op.conn.fetchval(
        "SELECT coalesce(sum(points), 0)::bigint FROM earnings "
        "WHERE subscriber_id = $1 AND rule = $2 AND occurred_at >= $3 AND occurred_at < $4",
        subscriber_id,
        grant.rule,
        start,
        end,
    )
    room = max(0, grant.month_cap - earned)
    if room >= grant.points:
        return grant.points, grant.note
    reason = f"monthly cap of {grant.month_cap} points reached"
    return room, reason
