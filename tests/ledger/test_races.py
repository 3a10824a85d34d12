"""Concurrency: crossing gifts, competing redemptions and resolutions, repeated keys,
and requests cut off by client-side timeouts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from ledger_harness import LedgerHarness, key

import ledger
from ledger import Code, LedgerSettings, ManualClock

CONCURRENCY = 20
RACE_SETTINGS = LedgerSettings(
    gift_daily_cap_points=10**9, gift_max_points=10**6, provisioning="external"
)


@pytest.fixture
def settings() -> LedgerSettings:
    return RACE_SETTINGS


@pytest.fixture
async def wide(
    database_url: str, lg: LedgerHarness, clock: ManualClock
) -> AsyncIterator[LedgerHarness]:
    """The same ledger through a pool as wide as the races."""
    pool = await asyncpg.create_pool(database_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    assert pool is not None
    try:
        yield LedgerHarness(pool, clock, RACE_SETTINGS)
    finally:
        await pool.close()


async def test_crossing_gifts_do_not_deadlock_or_lose_points(wide: LedgerHarness) -> None:
    a = await wide.member(100_000)
    b = await wide.member(100_000)
    amounts = [random.Random(i).randint(10, 500) for i in range(200)]
    jobs = [
        ledger.gift(wide.pool, *((a, b) if i % 2 else (b, a)), amounts[i], key=f"x{i}", **wide.ctx)
        for i in range(200)
    ]
    # Recipients accept while the gifts are still being sent.
    accepts = [
        ledger.accept_gift(wide.pool, a if i % 2 else b, key=f"acc{i}", **wide.ctx)
        for i in range(100)
    ]
    mixed = jobs + accepts
    random.Random(7).shuffle(mixed)
    results = await asyncio.gather(*mixed)
    assert all(r.code in (Code.OK, Code.NO_PENDING_GIFT) for r in results)
    sent_by_a = sum(amounts[i] for i in range(200) if i % 2)
    sent_by_b = sum(amounts[i] for i in range(200) if not i % 2)
    # Accept whatever is still pending.
    for who in (a, b):
        while (await ledger.accept_gift(wide.pool, who, key=key(), **wide.ctx)).ok:
            pass
    assert await wide.available(a) == 100_000 - sent_by_a + sent_by_b
    assert await wide.available(b) == 100_000 - sent_by_b + sent_by_a
    assert await wide.count("gifts WHERE status = 'accepted'") == 200
    assert await wide.violations() == []


async def test_parallel_redeems_of_the_whole_balance_one_wins(wide: LedgerHarness) -> None:
    number = await wide.member(200)  # exactly the price of gb-1
    results = await asyncio.gather(
        *(ledger.redeem(wide.pool, number, "gb-1", key=key(), **wide.ctx) for _ in range(25))
    )
    codes = sorted(r.code.value for r in results)
    assert codes == ["insufficient_points"] * 24 + ["ok"]
    assert await wide.available(number) == 0
    assert await wide.count("redemptions") == 1


async def test_accept_decline_cancel_and_sweeper_race_one_outcome(wide: LedgerHarness) -> None:
    a = await wide.member(100_000)
    b = await wide.member()
    for round_ in range(30):
        sent = (await ledger.gift(wide.pool, a, b, 100, key=key(), **wide.ctx)).unwrap()
        # The racers before the expiry, the sweeper after it.
        accept = ledger.accept_gift(wide.pool, b, sent.gift_id, key=key(), **wide.ctx)
        decline = ledger.decline_gift(wide.pool, b, sent.gift_id, key=key(), **wide.ctx)
        cancel = ledger.cancel_gift(wide.pool, a, sent.gift_id, key=key(), **wide.ctx)
        sweep = ledger.expire_gifts(wide.pool, sent.expires_at, **wide.ctx)
        racers = [accept, decline, cancel, sweep]
        random.Random(round_).shuffle(racers)
        results = await asyncio.gather(*racers)
        wins = sum(1 for r in results if (r == 1 if isinstance(r, int) else r.ok))
        losers = {r.code for r in results if not isinstance(r, int) and not r.ok}
        status = await wide.pool.fetchval("SELECT status FROM gifts WHERE id = $1", sent.gift_id)
        # Exactly one outcome; a sweep that found the gift locked leaves it to the winner.
        if wins == 0:
            assert status == "pending"
            assert await ledger.expire_gifts(wide.pool, sent.expires_at, **wide.ctx) == 1
        else:
            assert wins == 1
            assert status != "pending"
            assert losers <= {Code.GIFT_NOT_PENDING, Code.GIFT_EXPIRED}
    assert await wide.count("gifts WHERE status = 'pending'") == 0
    assert await wide.violations() == []


async def test_same_key_twenty_times_concurrently_one_effect(wide: LedgerHarness) -> None:
    a = await wide.member(1000)
    b = await wide.member()
    gifts = await asyncio.gather(
        *(ledger.gift(wide.pool, a, b, 100, key="same-gift", **wide.ctx) for _ in range(20))
    )
    assert all(g == gifts[0] for g in gifts)
    assert gifts[0].ok
    assert sum(1 for g in gifts if not g.replayed) == 1
    redeems = await asyncio.gather(
        *(ledger.redeem(wide.pool, a, "min-50", key="same-redeem", **wide.ctx) for _ in range(20))
    )
    assert all(r == redeems[0] for r in redeems)
    assert await wide.available(a) == 1000 - 100 - 150
    assert await wide.count("gifts") == 1
    assert await wide.count("redemptions") == 1
    enrolls = await asyncio.gather(
        *(
            ledger.enroll(wide.pool, "+79169990000", key="same-enroll", **wide.ctx)
            for _ in range(20)
        )
    )
    assert all(e == enrolls[0] for e in enrolls)
    assert enrolls[0].ok


async def test_timed_out_requests_retried_with_the_same_key_have_one_effect(
    wide: LedgerHarness,
) -> None:
    a = await wide.member(100_000)
    b = await wide.member()
    rng = random.Random(11)
    timeouts = 0
    for i in range(40):
        request_key = f"uncertain-{i}"
        try:
            await asyncio.wait_for(
                ledger.gift(wide.pool, a, b, 10, key=request_key, **wide.ctx),
                timeout=rng.uniform(0.0005, 0.008),
            )
        except TimeoutError:
            timeouts += 1
        # The client does not know whether it happened; it asks again.
        retried = await ledger.gift(wide.pool, a, b, 10, key=request_key, **wide.ctx)
        assert retried.ok
        accept_key = f"uncertain-accept-{i}"
        try:
            await asyncio.wait_for(
                ledger.accept_gift(
                    wide.pool, b, retried.unwrap().gift_id, key=accept_key, **wide.ctx
                ),
                timeout=rng.uniform(0.0005, 0.008),
            )
        except TimeoutError:
            timeouts += 1
        accepted = await ledger.accept_gift(
            wide.pool, b, retried.unwrap().gift_id, key=accept_key, **wide.ctx
        )
        assert accepted.ok
    assert timeouts > 0
    assert await wide.count("gifts") == 40
    assert await wide.available(a) == 100_000 - 400
    assert await wide.available(b) == 400
    assert await wide.violations() == []


async def test_sweepers_in_parallel_expire_each_gift_once(wide: LedgerHarness) -> None:
    a = await wide.member(100_000)
    recipients = [await wide.member() for _ in range(5)]
    for i in range(100):
        await ledger.gift(wide.pool, a, recipients[i % 5], 10, key=key(), **wide.ctx)
    wide.clock.advance(RACE_SETTINGS.gift_ttl + timedelta(seconds=1))
    small = LedgerSettings(sweep_batch=7)
    counts = await asyncio.gather(
        *(ledger.expire_gifts(wide.pool, clock=wide.clock, settings=small) for _ in range(6))
    )
    assert sum(counts) == 100
    assert await wide.available(a) == 100_000
    assert await wide.count("outbox WHERE event = 'gift_returned'") == 100
