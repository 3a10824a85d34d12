"""The embedded servers and the migration runner, against real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from ledger.migrations import available_migrations, migrate
from ussd_service.backends import SCHEMA_PACKAGES
from ussd_service.embedded import EmbeddedServers


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ussd-emb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_start_join_stop_and_restart_keeps_data(data_dir: Path) -> None:
    first = EmbeddedServers(data_dir, durable=False)
    urls = first.start()
    pids = first.pids
    assert len(pids) == 2
    assert redis.Redis.from_url(urls.redis_url).ping()

    async def write_then_read(value: str | None) -> str | None:
        conn = await asyncpg.connect(urls.database_url)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
            if value is not None:
                await conn.execute("INSERT INTO kept VALUES ($1)", value)
            return await conn.fetchval("SELECT v FROM kept LIMIT 1")
        finally:
            await conn.close()

    assert asyncio.run(write_then_read("points")) == "points"

    # A second process on the same data dir joins instead of starting servers.
    joiner = EmbeddedServers(data_dir, durable=False)
    assert joiner.start() == urls
    assert not joiner.started_any
    joiner.stop()
    assert all(psutil.pid_exists(pid) for pid in pids)

    first.stop()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

    # Restart over the same directory: the data survived.
    again = EmbeddedServers(data_dir, durable=False)
    urls_again = again.start()
    try:
        assert again.started_any
        assert asyncio.run(write_then_read(None)) == "points"
        assert urls_again == urls
    finally:
        again.stop()


async def test_migrations_apply_once_even_when_run_concurrently(
    servers, template_database: str
) -> None:
    admin = await asyncpg.connect(servers.database_url_for("postgres"))
    name = f"ussd_mig_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conns = [await asyncpg.connect(servers.database_url_for(name)) for _ in range(3)]
        results = await asyncio.gather(*(migrate(c, SCHEMA_PACKAGES) for c in conns))
        names = [m.name for p in SCHEMA_PACKAGES for m in available_migrations(p)]
        # Exactly one runner applied each file; the others found it done.
        assert sorted(n for r in results for n in r) == sorted(names)
        assert await migrate(conns[0], SCHEMA_PACKAGES) == []
        recorded = await conns[0].fetch(
            "SELECT name FROM schema_migrations ORDER BY applied_at, package, version"
        )
        assert [r["name"] for r in recorded] == names
        for c in conns:
            await c.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_each_test_gets_an_empty_redis_and_a_migrated_database(
    pg_pool: asyncpg.Pool, redis_client
) -> None:
    assert await redis_client.dbsize() == 0
    versions = await pg_pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert versions == sum(len(available_migrations(p)) for p in SCHEMA_PACKAGES)
