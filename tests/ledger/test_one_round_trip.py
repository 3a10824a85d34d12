"""gift, accept_gift, decline_gift and redeem: one statement each (stored functions), also without
asyncpg's statement cache (PgBouncer), with the stored result in the encoder's format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from ledger_harness import LedgerHarness, key

import ledger
from ledger import Code
from ledger.results import encode


class Statements:
    """Every statement the driver sends on the pool's connections."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        self.sent.append(record.query)

    async def settle(self) -> list[str]:
        await asyncio.sleep(0)  # the loggers run from call_soon
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture(params=[100, 0], ids=["statement-cache", "no-statement-cache"])
async def counted(
    request: pytest.FixtureRequest, database_url: str, lg: LedgerHarness
) -> AsyncIterator[tuple[LedgerHarness, Statements]]:
    """The ledger through a pool of one connection whose statements are recorded."""
    statements = Statements()

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(statements)

    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=1, init=init, statement_cache_size=request.param,
        reset=_no_reset,
    )  # fmt: skip
    assert pool is not None
    try:
        yield LedgerHarness(pool, lg.clock, lg.settings), statements
    finally:
        await pool.close()


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """As the service's pool (open_pg_pool): no reset query on release."""


async def test_each_operation_is_one_statement(
    lg: LedgerHarness, counted: tuple[LedgerHarness, Statements]
) -> None:
    harness, statements = counted
    a, b = await lg.member(1_000), await lg.member(1_000)
    await statements.settle()

    for _ in range(3):  # the first call prepares; later ones reuse it (or re-prepare)
        sent = await ledger.gift(harness.pool, a, b, 10, key=key(), **harness.ctx)
        assert sent.ok
        assert len(await statements.settle()) == 1
        accepted = await ledger.accept_gift(harness.pool, b, key=key(), **harness.ctx)
        assert accepted.ok
        assert len(await statements.settle()) == 1
        await ledger.gift(harness.pool, a, b, 10, key=key(), **harness.ctx)
        await statements.settle()
        declined = await ledger.decline_gift(harness.pool, b, key=key(), **harness.ctx)
        assert declined.ok
        assert len(await statements.settle()) == 1
        redeemed = await ledger.redeem(harness.pool, a, "sms-50", key=key(), **harness.ctx)
        assert redeemed.ok
        # The dev provisioner's fulfilment is a transaction of its own.
        assert (await statements.settle())[0].startswith("SELECT state, result FROM ledger_redeem")
    assert (await ledger.balance(lg.pool, b, **lg.ctx)).unwrap().available == 1_030


async def test_a_repeated_key_replays_or_conflicts_without_the_cache(
    lg: LedgerHarness, counted: tuple[LedgerHarness, Statements]
) -> None:
    harness, _ = counted
    a, b = await lg.member(500), await lg.member(500)
    k = key()
    first = await ledger.gift(harness.pool, a, b, 100, key=k, **harness.ctx)
    again = await ledger.gift(harness.pool, a, b, 100, key=k, **harness.ctx)
    other = await ledger.gift(harness.pool, a, b, 200, key=k, **harness.ctx)
    assert first.ok
    assert again == first
    assert again.replayed
    assert not first.replayed
    assert other.code is Code.IDEMPOTENCY_CONFLICT
    assert (await ledger.balance(lg.pool, a, **lg.ctx)).unwrap().available == 400


async def test_stored_results_are_what_the_python_encoder_writes(lg: LedgerHarness) -> None:
    a, b = await lg.member(1_000), await lg.member(1_000)
    outcomes = {
        "gift": await ledger.gift(lg.pool, a, b, 100, key="g", **lg.ctx),
        "rejected": await ledger.gift(lg.pool, a, b, 5, key="small", **lg.ctx),
        "accept": await ledger.accept_gift(lg.pool, b, key="acc", **lg.ctx),
        "none": await ledger.accept_gift(lg.pool, b, key="none", **lg.ctx),
        "declined_gift": await ledger.gift(lg.pool, a, b, 50, key="g2", **lg.ctx),
        "decline": await ledger.decline_gift(lg.pool, b, key="dec", **lg.ctx),
        "decline_again": await ledger.decline_gift(lg.pool, b, key="dec2", **lg.ctx),
        "redeem": await ledger.redeem(lg.pool, a, "sms-50", key="r", **lg.ctx),
        "poor": await ledger.redeem(lg.pool, b, "cert-electronics-1000", key="poor", **lg.ctx),
    }
    assert outcomes["rejected"].code is Code.BELOW_MINIMUM
    assert outcomes["none"].code is Code.NO_PENDING_GIFT
    assert outcomes["poor"].code is Code.INSUFFICIENT_POINTS
    assert outcomes["decline"].ok
    assert outcomes["decline_again"].code is Code.NO_PENDING_GIFT
    keys = {"gift": "g", "rejected": "small", "accept": "acc", "none": "none", "redeem": "r",
            "poor": "poor", "declined_gift": "g2", "decline": "dec",
            "decline_again": "dec2"}  # fmt: skip
    for name, outcome in outcomes.items():
        stored = await lg.pool.fetchrow(
            "SELECT status, code, result FROM operations WHERE op_id = $1", keys[name]
        )
        assert stored is not None
        assert json.loads(stored["result"]) == encode(outcome), name
        assert stored["code"] == outcome.code.value
        assert stored["status"] == ("succeeded" if outcome.ok else "rejected")
