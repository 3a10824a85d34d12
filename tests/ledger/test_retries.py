"""A real deadlock rolls one transaction back; it is run again whole, with the same key."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger_harness import LedgerHarness

from ledger import Code, Outcome
from ledger._tx import Op, run_operation


async def test_deadlocked_operation_is_retried_whole_with_the_same_key(
    lg: LedgerHarness,
) -> None:
    a = await lg.member(100)
    b = await lg.member(100)
    ids = [
        await lg.pool.fetchval(
            "SELECT a.id FROM accounts a JOIN subscribers s ON s.id = a.subscriber_id "
            "WHERE s.msisdn = $1",
            n,
        )
        for n in (a, b)
    ]
    both_hold_one = asyncio.Barrier(2)
    attempts: dict[str, int] = {"first": 0, "second": 0}

    def body_locking(name: str, order: list[int]) -> Any:
        async def body(op: Op) -> Outcome[Any]:
            attempts[name] += 1
            await op.conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", order[0])
            if attempts[name] == 1:
                # Both now hold one row and want the other's: PostgreSQL
                # detects the cycle and aborts one of them.
                await both_hold_one.wait()
            await op.conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", order[1])
            return Outcome(Code.OK, details={"attempt": attempts[name]})

        return body

    async def run(name: str, order: list[int]) -> Outcome[Any]:
        return await run_operation(
            lg.pool,
            kind="test_deadlock",
            key=f"deadlock-{name}",
            request={},
            value_type=dict,
            body=body_locking(name, order),
            clock=lg.clock,
            settings=lg.settings,
        )

    first, second = await asyncio.gather(run("first", ids), run("second", ids[::-1]))
    assert first.ok
    assert second.ok
    assert sorted(attempts.values()) == [1, 2]
    stored = await lg.pool.fetch(
        "SELECT op_id, result FROM operations WHERE kind = 'test_deadlock' ORDER BY op_id"
    )
    assert [r["op_id"] for r in stored] == ["deadlock-first", "deadlock-second"]
