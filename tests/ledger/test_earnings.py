"""earn() on the real ledger: one operation per event, caps by the programme's month, replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from ledger_harness import LedgerHarness

import ledger
from ledger import Grant


def grant(rule: str, points: int, lg: LedgerHarness, cap: int | None = None) -> Grant:
    return Grant(rule, points, lg.clock.now() + timedelta(days=90), cap)


async def earn(lg: LedgerHarness, number: str, at: datetime, grants: list[Grant], key: str):
    return await ledger.earn(
        lg.pool,
        number,
        "topup",
        at,
        grants,
        key=key,
        request={"key": key, "at": at.isoformat()},
        **lg.ctx,
    )


async def test_the_monthly_cap_follows_the_programmes_calendar(lg: LedgerHarness) -> None:
    lg.clock.set(datetime(2025, 2, 20, 9, 0, tzinfo=UTC))
    number = await lg.member()
    # 31 January 21:30 UTC is already 1 February in Moscow.
    january = datetime(2025, 1, 31, 20, 30, tzinfo=UTC)
    february = datetime(2025, 1, 31, 21, 30, tzinfo=UTC)
    first = await earn(lg, number, january, [grant("topup", 80, lg, cap=100)], "a")
    second = await earn(lg, number, february, [grant("topup", 80, lg, cap=100)], "b")
    third = await earn(lg, number, february, [grant("topup", 80, lg, cap=100)], "c")
    assert [o.unwrap().points for o in (first, second, third)] == [80, 80, 20]
    assert third.details["accruals"][0]["capped"] == "monthly cap of 100 points reached"
    assert await lg.available(number) == 180


async def test_a_replay_keeps_its_first_answer_whatever_the_rules_say_now(
    lg: LedgerHarness,
) -> None:
    number = await lg.member()
    at = lg.clock.now() - timedelta(hours=1)
    first = await earn(lg, number, at, [grant("topup", 30, lg)], "k")
    # The rules changed in between: the same event under the same key is not credited again.
    again = await earn(lg, number, at, [grant("topup", 99, lg), grant("promo", 5, lg)], "k")
    assert again == first
    assert again.replayed
    assert await lg.available(number) == 30
    # History shows it as an accrual.
    [item] = (await ledger.history(lg.pool, number)).unwrap().items
    assert (item.kind, item.points) == ("accrual", 30)


async def test_one_joining_bonus_per_member_even_behind_the_code(lg: LedgerHarness) -> None:
    number = await lg.member()
    at = lg.clock.now()
    expires = at + timedelta(days=30)
    for key in ("j1", "j2"):
        outcome = await ledger.earn(
            lg.pool,
            number,
            "joined",
            at,
            [Grant("welcome", 100, expires)],
            key=key,
            request={"key": key},
            **lg.ctx,
        )
        assert outcome.ok
    assert await lg.available(number) == 100
    # The database refuses a second joined row whatever the caller does.
    assert (await ledger.accrue(lg.pool, number, 5, key="other-lot", **lg.ctx)).ok
    async with lg.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM earnings")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO earnings (operation_id, subscriber_id, lot_id, kind, rule, points, "
                "occurred_at, created_at) SELECT $1, $2, l.id, 'joined', 'other', 1, $3, $3 "
                "FROM point_lots l WHERE l.id <> $4",
                row["operation_id"],
                row["subscriber_id"],
                at,
                row["lot_id"],
            )


async def test_expiries_are_checked_and_nothing_is_kept_on_refusal(lg: LedgerHarness) -> None:
    number = await lg.member()
    at = lg.clock.now()
    past = Grant("topup", 10, at - timedelta(days=1))
    with pytest.raises(ValueError, match="in the future"):
        await earn(lg, number, at, [past], "old")
    assert await lg.count("operations WHERE op_id = 'old'") == 0
    refused = await ledger.earn(
        lg.pool,
        "+79990000000",
        "topup",
        at,
        [grant("topup", 5, lg)],
        key="x",
        request={},
        **lg.ctx,
    )
    assert refused.code is ledger.Code.NOT_ENROLLED
