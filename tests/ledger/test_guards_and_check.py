"""The database refuses bad writes, and ``check`` finds what slipped past anyway."""

from __future__ import annotations

import asyncpg
import pytest
from ledger_harness import LedgerHarness, key

import ledger


async def _populated(lg: LedgerHarness) -> tuple[str, str, int]:
    """Two subscribers with accruals, a pending gift, an accepted gift, a redemption."""
    a = await lg.member(1000)
    b = await lg.member(300)
    accepted = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    assert (await ledger.accept_gift(lg.pool, b, accepted.gift_id, key=key(), **lg.ctx)).ok
    pending = (await ledger.gift(lg.pool, b, a, 50, key=key(), **lg.ctx)).unwrap()
    assert (await ledger.redeem(lg.pool, a, "sms-50", key=key(), **lg.ctx)).ok
    return a, b, pending.gift_id


async def test_check_is_clean_on_a_busy_ledger(lg: LedgerHarness) -> None:
    await _populated(lg)
    assert await lg.violations() == []


async def test_postings_cannot_be_updated_deleted_or_truncated(lg: LedgerHarness) -> None:
    await _populated(lg)
    for statement in (
        "UPDATE postings SET amount = amount + 1",
        "DELETE FROM postings",
        "TRUNCATE postings CASCADE",
        "UPDATE lot_moves SET amount = 1",
        "DELETE FROM operations",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await lg.pool.execute(statement)


async def test_stored_results_and_resolved_gifts_cannot_change(lg: LedgerHarness) -> None:
    await _populated(lg)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await lg.pool.execute("UPDATE operations SET code = 'ok', status = 'succeeded'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await lg.pool.execute("UPDATE gifts SET status = 'pending' WHERE status = 'accepted'")


async def test_unbalanced_postings_are_refused_at_commit(lg: LedgerHarness) -> None:
    a, _, _ = await _populated(lg)
    async with lg.pool.acquire() as conn:
        account = await conn.fetchval(
            "SELECT a.id FROM accounts a JOIN subscribers s ON s.id = a.subscriber_id "
            "WHERE s.msisdn = $1",
            a,
        )
        forge = """
            WITH op AS (
                INSERT INTO operations (op_id, kind, request_hash, status, code, result, created_at)
                VALUES ('forged', 'accrue', 'x', 'succeeded', 'ok', '{}', now()) RETURNING id
            )
            INSERT INTO postings (operation_id, account_id, amount, created_at)
            SELECT op.id, $1, 5, now() FROM op
        """
        with pytest.raises(asyncpg.CheckViolationError, match="sum to 5"):
            await conn.execute(forge, account)
    assert await lg.violations() == []


async def test_negative_subscriber_balance_is_refused(lg: LedgerHarness) -> None:
    await _populated(lg)
    with pytest.raises(asyncpg.CheckViolationError):
        await lg.pool.execute("UPDATE accounts SET balance = -1 WHERE kind = 'subscriber'")


# Each corruption bypasses the triggers (replica mode) the way a bad manual fix would.
CORRUPTIONS: dict[str, tuple[str, set[str]]] = {
    "balance bumped": (
        "UPDATE accounts SET balance = balance + 7 WHERE id = "
        "(SELECT min(id) FROM accounts WHERE kind = 'subscriber')",
        {"balance_equals_postings", "balance_equals_lots", "all_accounts_sum_to_zero"},
    ),
    "posting amount changed": (
        "UPDATE postings SET amount = amount + 1 WHERE id = (SELECT max(id) FROM postings)",
        {"operation_balanced"},
    ),
    "posting deleted": (
        "DELETE FROM postings WHERE id = (SELECT max(id) FROM postings "
        "WHERE balance_after IS NOT NULL)",
        {"operation_balanced", "balance_equals_postings"},
    ),
    "gift resolved without moving points": (
        "UPDATE gifts SET status = 'accepted', resolved_at = now(), "
        "resolve_operation_id = operation_id WHERE status = 'pending'",
        {"escrow_equals_pending"},
    ),
    "lot drained": (
        "UPDATE point_lots SET remaining = 0 WHERE id = (SELECT min(id) FROM point_lots "
        "WHERE remaining > 0)",
        {"balance_equals_lots", "lot_remaining_matches_moves"},
    ),
    "balance_after wrong": (
        "UPDATE postings SET balance_after = balance_after + 1 "
        "WHERE id = (SELECT min(id) FROM postings WHERE balance_after IS NOT NULL)",
        {"balance_after_chain"},
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
async def test_check_finds_a_corrupted_database(lg: LedgerHarness, name: str) -> None:
    await _populated(lg)
    statement, expected = CORRUPTIONS[name]
    lg.corrupted = True
    async with lg.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(statement)
    found = {v.invariant for v in await lg.violations()}
    assert expected <= found, found
    assert all(str(v).startswith(v.invariant + ": ") for v in await lg.violations())
