"""Expiry reminders on the real ledger: once per lot, whatever the runs, restarts and races."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import asyncpg
from ledger_harness import LedgerHarness, key

import ledger

WINDOW = timedelta(days=14)


async def remind(lg: LedgerHarness, batch: int = 100, pool: asyncpg.Pool | None = None):
    return await ledger.remind_expiring(
        pool or lg.pool, within=WINDOW, batch=batch, clock=lg.clock, settings=lg.settings
    )


async def reminders(pool: asyncpg.Pool) -> list[tuple[str, dict]]:
    rows = await pool.fetch(
        "SELECT msisdn, payload FROM outbox WHERE event = 'points_expiring' ORDER BY id"
    )
    return [(row["msisdn"], json.loads(row["payload"])) for row in rows]


def in_days(lg: LedgerHarness, days: int) -> date:
    return (lg.clock.now() + timedelta(days=days)).date()


async def test_a_lot_is_reminded_once_with_its_points_and_date(lg: LedgerHarness) -> None:
    number = await lg.member(300, expires_at=None)
    day = in_days(lg, 10)
    # Two lots expiring the same day: one SMS naming both.
    for points in (120, 5):
        assert (
            await ledger.accrue(lg.pool, number, points, key=key(), expires_at=day, **lg.ctx)
        ).ok
    run = await remind(lg)
    assert (run.lots, run.messages) == (2, 1)
    [(to, payload)] = await reminders(lg.pool)
    assert to == number
    assert payload["points"] == 125
    assert payload["language"] == "ru"
    assert date.fromisoformat(payload["expires_at"][:10]) == day
    assert len(payload["lots"]) == 2
    # Again, later, and after a day more: nothing new.
    assert await remind(lg) == ledger.ReminderRun(0, 0)
    lg.clock.advance(timedelta(days=1))
    assert await remind(lg) == ledger.ReminderRun(0, 0)
    assert len(await reminders(lg.pool)) == 1


async def test_lots_outside_the_window_wait_for_it(lg: LedgerHarness) -> None:
    number = await lg.member()
    far = in_days(lg, 20)
    assert (await ledger.accrue(lg.pool, number, 40, key=key(), expires_at=far, **lg.ctx)).ok
    assert await remind(lg) == ledger.ReminderRun(0, 0)
    lg.clock.advance(timedelta(days=5))
    assert await remind(lg) == ledger.ReminderRun(0, 0)
    lg.clock.advance(timedelta(days=2))  # 13 days left
    assert await remind(lg) == ledger.ReminderRun(1, 1)
    [(_, payload)] = await reminders(lg.pool)
    assert payload["points"] == 40


async def test_spent_and_expired_lots_are_not_reminded(lg: LedgerHarness) -> None:
    sender = await lg.member()
    friend = await lg.member()
    soon = in_days(lg, 5)
    assert (await ledger.accrue(lg.pool, sender, 100, key=key(), expires_at=soon, **lg.ctx)).ok
    assert (await ledger.accrue(lg.pool, sender, 70, key=key(), expires_at=soon, **lg.ctx)).ok
    # The gift takes the soonest lots: 100 of the first, 30 of the second.
    assert (await ledger.gift(lg.pool, sender, friend, 130, key=key(), **lg.ctx)).ok
    gone = await lg.member()
    tomorrow = in_days(lg, 1)
    assert (await ledger.accrue(lg.pool, gone, 10, key=key(), expires_at=tomorrow, **lg.ctx)).ok
    lg.clock.advance(timedelta(days=2))  # the last lot has expired (not yet swept)
    run = await remind(lg)
    assert (run.lots, run.messages) == (1, 1)
    [(to, payload)] = await reminders(lg.pool)
    assert (to, payload["points"]) == (sender, 40)


async def test_two_concurrent_runs_send_one_sms_per_lot(lg: LedgerHarness) -> None:
    day = in_days(lg, 3)
    numbers = []
    for _ in range(30):
        number = await lg.member()
        assert (await ledger.accrue(lg.pool, number, 50, key=key(), expires_at=day, **lg.ctx)).ok
        numbers.append(number)
    runs = await asyncio.gather(*(remind(lg, batch=7) for _ in range(4)))
    while (more := await remind(lg, batch=7)).lots:
        runs.append(more)
    assert all(run.lots <= 7 for run in runs)
    assert sum(run.lots for run in runs) == 30
    sent = await reminders(lg.pool)
    assert sorted(to for to, _ in sent) == sorted(numbers)


async def test_a_restart_sends_nothing_again(lg: LedgerHarness, database_url: str) -> None:
    number = await lg.member()
    day = in_days(lg, 7)
    assert (await ledger.accrue(lg.pool, number, 15, key=key(), expires_at=day, **lg.ctx)).ok
    assert (await remind(lg)).messages == 1
    # Another process (new connections, nothing in memory) after the restart.
    other = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        assert await remind(lg, pool=other) == ledger.ReminderRun(0, 0)
    finally:
        await other.close()
    assert len(await reminders(lg.pool)) == 1


async def test_a_run_claims_at_most_its_batch(lg: LedgerHarness) -> None:
    day = in_days(lg, 2)
    for _ in range(5):
        number = await lg.member()
        assert (await ledger.accrue(lg.pool, number, 20, key=key(), expires_at=day, **lg.ctx)).ok
    claimed = []
    while (run := await remind(lg, batch=2)).lots:
        claimed.append(run.lots)
    assert claimed == [2, 2, 1]
    assert len(await reminders(lg.pool)) == 5


async def test_language_and_a_crash_before_commit(lg: LedgerHarness) -> None:
    number = await lg.member()
    assert (await ledger.set_language(lg.pool, number, "en", key=key(), **lg.ctx)).ok
    day = in_days(lg, 4)
    assert (await ledger.accrue(lg.pool, number, 1, key=key(), expires_at=day, **lg.ctx)).ok
    # A pass that dies before commit (the outbox refuses the row) leaves the lot unclaimed.
    async with lg.pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE outbox ADD CONSTRAINT no_reminders CHECK (event <> 'points_expiring')"
        )
    try:
        await remind(lg)
    except asyncpg.CheckViolationError:
        pass
    else:
        raise AssertionError("the pass should have failed")
    async with lg.pool.acquire() as conn:
        await conn.execute("ALTER TABLE outbox DROP CONSTRAINT no_reminders")
    assert (
        await lg.pool.fetchval("SELECT count(*) FROM point_lots WHERE reminded_at IS NOT NULL") == 0
    )
    assert (await remind(lg)).messages == 1
    [(_, payload)] = await reminders(lg.pool)
    assert (payload["language"], payload["points"]) == ("en", 1)


async def test_blocked_members_are_not_reminded_until_unblocked(lg: LedgerHarness) -> None:
    number = await lg.member()
    day = in_days(lg, 6)
    assert (await ledger.accrue(lg.pool, number, 30, key=key(), expires_at=day, **lg.ctx)).ok
    assert (await ledger.block(lg.pool, number, key=key(), **lg.ctx)).ok
    assert await remind(lg) == ledger.ReminderRun(0, 0)
    assert (await ledger.unblock(lg.pool, number, key=key(), **lg.ctx)).ok
    assert await remind(lg) == ledger.ReminderRun(1, 1)
