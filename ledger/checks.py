"""Read-only checks that tell a subscriber, before any confirmation, what would be refused.

``gift`` checks everything again when it runs (balances change, a recipient
may be blocked meanwhile); these answer early, with the same codes and the
same rules (``LedgerSettings``), so a menu can ask again instead of ending.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ledger import _accounts
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.gifts import day_start
from ledger.msisdn import normalize, try_normalize
from ledger.points import enrolled_code, read_balance
from ledger.results import Outcome
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings


@dataclass(frozen=True)
class GiftCheck:
    """What a gift may be now: ``minimum``..``maximum`` points per gift (the rules),
    ``available`` (the sender's balance) and ``allowance`` (what the daily cap
    leaves today); ``recipient`` in E.164 when one was checked."""

    recipient: str | None
    minimum: int
    maximum: int
    available: int
    allowance: int


async def gift_check(
    pool: asyncpg.Pool,
    sender: str,
    recipient: str | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[GiftCheck]:
    """Could ``sender`` gift (to ``recipient``, when given)? Nothing is written.

    Codes, in ``gift``'s order: not_enrolled, blocked (the sender),
    invalid_recipient, self_gift, recipient_not_enrolled (not a member, or
    blocked: the sender is not told which). Every answer's ``data`` holds the
    limits (minimum, maximum).
    """
    sender_number = normalize(sender, settings.default_region)
    limits = {"minimum": settings.gift_min_points, "maximum": settings.gift_max_points}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        src = await _accounts.find_subscriber(conn, sender_number)
        code = enrolled_code(src)
        if src is None or code is not Code.OK:
            return Outcome(code, details=limits)
        number = None
        if recipient is not None:
            number = try_normalize(recipient, settings.default_region)
            if number is None:
                return Outcome(Code.INVALID_RECIPIENT, details=limits)
            if number == sender_number:
                return Outcome(Code.SELF_GIFT, details=limits)
            dst = await _accounts.find_subscriber(conn, number)
            if dst is None or dst.status != "active":
                return Outcome(Code.RECIPIENT_NOT_ENROLLED, details=limits)
        now = clock.now()
        balance = await read_balance(conn, src, now, settings)
        sent_today: int = await conn.fetchval(
            "SELECT coalesce(sum(points), 0)::bigint FROM gifts "
            "WHERE sender_id = $1 AND created_at >= $2 AND status <> 'cancelled'",
            src.id,
            day_start(now, settings.timezone),
        )
    return Outcome(
        Code.OK,
        GiftCheck(
            recipient=number,
            minimum=settings.gift_min_points,
            maximum=settings.gift_max_points,
            available=balance.available,
            allowance=max(0, settings.gift_daily_cap_points - sent_today),
        ),
    )
