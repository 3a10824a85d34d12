"""Cancelling a gift: exactly one of accept and cancel wins a race, retries move nothing twice.

Through the ledger's public functions on real PostgreSQL, with a pool as wide as the race.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
from ledger_harness import LedgerHarness, key

import ledger
from ledger import Code, LedgerSettings, ManualClock

ROUNDS = 40
RACE_SETTINGS = LedgerSettings(gift_daily_cap_points=10**9, gift_max_points=10**6)


@pytest.fixture
def settings() -> LedgerSettings:
    return RACE_SETTINGS


@pytest.fixture
async def wide(
    database_url: str, lg: LedgerHarness, clock: ManualClock
) -> AsyncIterator[LedgerHarness]:
    """The same ledger through a pool wide enough for every racer at once."""
    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=8)
    assert pool is not None
    try:
        yield LedgerHarness(pool, clock, RACE_SETTINGS)
    finally:
        await pool.close()


async def _events(pool: asyncpg.Pool, gift_id: int) -> list[str]:
    rows = await pool.fetch(
        "SELECT event FROM outbox WHERE (payload->>'gift_id')::bigint = $1 "
        "AND event <> 'gift_received' ORDER BY id",
        gift_id,
    )
    return sorted(row["event"] for row in rows)


@pytest.mark.parametrize("by", ["id", "newest", "operator"])
async def test_cancel_racing_accept_exactly_one_wins(wide: LedgerHarness, by: str) -> None:
    a = await wide.member(100_000)
    b = await wide.member()
    accepted = cancelled = 0
    for round_ in range(ROUNDS):
        sent = (await ledger.gift(wide.pool, a, b, 100, key=key(), **wide.ctx)).unwrap()
        accept = ledger.accept_gift(wide.pool, b, sent.gift_id, key=key(), **wide.ctx)
        if by == "id":
            cancel = ledger.cancel_gift(wide.pool, a, sent.gift_id, key=key(), **wide.ctx)
        elif by == "newest":  # SMS CANCEL: the ledger picks the gift
            cancel = ledger.cancel_gift(wide.pool, a, recipient=b, key=key(), **wide.ctx)
        else:  # the operator API: no sender named
            cancel = ledger.cancel_gift(wide.pool, None, sent.gift_id, key=key(), **wide.ctx)
        racers = [("accept", accept), ("cancel", cancel)]
        random.Random(round_).shuffle(racers)
        answers = await asyncio.gather(*(call for _, call in racers))
        results = dict(zip([name for name, _ in racers], answers, strict=True))
        winners = [name for name, result in results.items() if result.ok]
        assert len(winners) == 1, results
        loser = results["cancel" if winners == ["accept"] else "accept"]
        status = await wide.pool.fetchval("SELECT status FROM gifts WHERE id = $1", sent.gift_id)
        if winners == ["accept"]:
            accepted += 1
            assert status == "accepted"
            # Too late to cancel: said so (by id), or nothing left to cancel (the newest).
            if by == "newest":
                assert loser.code is Code.NO_PENDING_GIFT
            else:
                assert loser.code is Code.GIFT_NOT_PENDING
                assert loser.details == {"status": "accepted"}
            assert await _events(wide.pool, sent.gift_id) == ["gift_accepted"]
        else:
            cancelled += 1
            assert status == "cancelled"
            assert loser.code is Code.GIFT_NOT_PENDING
            assert await _events(wide.pool, sent.gift_id) == ["gift_cancelled", "gift_returned"]
    assert accepted + cancelled == ROUNDS
    # Every point is where one winner put it.
    assert await wide.available(b) == 100 * accepted
    assert await wide.available(a) == 100_000 - 100 * accepted
    assert await wide.count("gifts WHERE status = 'pending'") == 0
    assert await ledger.check(wide.pool) == []


async def test_the_same_cancel_twenty_times_at_once_has_one_effect(wide: LedgerHarness) -> None:
    a = await wide.member(1000)
    b = await wide.member()
    for points in (100, 200):
        assert (await ledger.gift(wide.pool, a, b, points, key=key(), **wide.ctx)).ok
    # A redelivered SMS CANCEL: the newest gift only, however many copies arrive.
    results = await asyncio.gather(
        *(ledger.cancel_gift(wide.pool, a, key="same-cancel", **wide.ctx) for _ in range(20))
    )
    assert all(r == results[0] for r in results)
    assert results[0].ok
    assert results[0].data["points"] == 200
    assert sum(1 for r in results if not r.replayed) == 1
    assert await wide.available(a) == 900
    left = (await ledger.sent_gifts(wide.pool, a, **wide.ctx)).unwrap()
    assert [g.points for g in left.items] == [100]
    assert await ledger.check(wide.pool) == []


async def test_newest_to_a_recipient_and_what_cannot_be_asked(lg: LedgerHarness) -> None:
    a = await lg.member(1000)
    b, c = await lg.member(), await lg.member()
    to_b = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    assert (await ledger.gift(lg.pool, a, c, 50, key=key(), **lg.ctx)).ok
    taken = await ledger.cancel_gift(lg.pool, a, recipient=b, key=key(), **lg.ctx)
    assert taken.unwrap().gift_id == to_b.gift_id
    again = await ledger.cancel_gift(lg.pool, a, recipient=b, key=key(), **lg.ctx)
    assert again.code is Code.NO_PENDING_GIFT
    # Someone else's gift is never revealed: no such gift for them.
    assert (await ledger.cancel_gift(lg.pool, b, key=key(), **lg.ctx)).code is Code.NO_PENDING_GIFT
    with pytest.raises(ValueError, match="needs the sender or the gift"):
        await ledger.cancel_gift(lg.pool, None, key=key(), **lg.ctx)
