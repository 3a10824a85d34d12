"""Deployment settings of the scale-out: the ledger behind PgBouncer in transaction mode.

PgBouncer in transaction mode hands each transaction whatever server
connection is free, so a statement asyncpg prepared (and cached by name) on
one is missing on the next. ``DATABASE_URL=...?statement_cache_size=0`` makes
the service's pools prepare nothing by name; this checks the parameter is read
(and not sent to the server) and that ledger operations then leave no named
prepared statement behind, which is what transaction pooling needs. (The run
through a real PgBouncer 1.18 is in README.md, "Deployment".)
"""

from __future__ import annotations

import asyncpg
import pytest

import ledger
from ussd_service.backends import apply_migrations, open_pg_pool, pg_connect_args

MEMBERS = [f"+7916{n:07d}" for n in range(7_000_000, 7_000_010)]


def test_the_statement_cache_parameter_is_the_services_not_the_servers() -> None:
    url = "postgresql://u:p@pgbouncer:6432/ussd?sslmode=disable&statement_cache_size=0"
    assert pg_connect_args(url) == (
        "postgresql://u:p@pgbouncer:6432/ussd?sslmode=disable",
        {"statement_cache_size": 0},
    )
    # Without it the URL is passed on untouched (the embedded server's ?host=%2F...).
    embedded = "postgresql://postgres:s@/ussd?host=%2Ftmp%2Frun"
    assert pg_connect_args(embedded) == (embedded, {})
    with pytest.raises(asyncpg.InterfaceError, match="whole number"):
        pg_connect_args("postgresql://u@h/db?statement_cache_size=off")


async def _named_statements_after_ledger_work(url: str) -> int:
    pool = await open_pg_pool(url, max_size=2, min_size=2)
    try:
        for msisdn in MEMBERS:
            assert (await ledger.enroll(pool, msisdn, key=f"e{msisdn}")).ok
            assert (await ledger.accrue(pool, msisdn, 50, key=f"a{msisdn}")).ok
            assert (await ledger.balance(pool, msisdn)).ok
        assert (await ledger.gift(pool, MEMBERS[0], MEMBERS[1], 10, key="g")).ok
        assert await ledger.check(pool) == []
        named = 0
        for _ in range(2):  # both connections of the pool
            async with pool.acquire() as conn:
                named += await conn.fetchval(
                    "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '__asyncpg%'"
                )
        return named
    finally:
        await pool.close()


async def test_without_a_statement_cache_the_ledger_prepares_nothing_by_name(
    database_url: str,
) -> None:
    uncached = database_url + ("&" if "?" in database_url else "?") + "statement_cache_size=0"
    assert await apply_migrations(uncached) == []
    assert await _named_statements_after_ledger_work(uncached) == 0


async def test_by_default_statements_are_prepared_and_kept(database_url: str) -> None:
    """The default (no PgBouncer, or session mode): statements parsed once per connection."""
    assert await _named_statements_after_ledger_work(database_url) > 0
