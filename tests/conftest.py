"""Shared fixtures: real Redis and PostgreSQL for every test.

The servers start once per test run (embedded, the same module ``serve`` uses)
unless ``REDIS_URL`` and ``DATABASE_URL`` point at servers of your own. Each
test gets a fresh database cloned from a migrated template and an empty Redis
database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from embedded_servers import EmbeddedServers
from embedded_servers.redis_cluster import LocalRedisCluster
from ledger.migrations import migrate
from ussd_service.app import create_app
from ussd_service.backends import SCHEMA_PACKAGES
from ussd_service.config import Settings

TEMPLATE_DB = "ussd_test_template"
MENU_FILE = Path(__file__).resolve().parents[1] / "menu_definitions.yaml"
_db_counter = itertools.count()


def _with_database(url: str, database: str) -> str:
    """``url`` with its database name replaced."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


class ServerTarget:
    """The Redis and PostgreSQL servers the test run uses."""

    def __init__(self, redis_url: str, database_url: str, embedded: EmbeddedServers | None):
        self.redis_url = redis_url
        self.database_url = database_url
        self.embedded = embedded

    def database_url_for(self, database: str) -> str:
        return _with_database(self.database_url, database)


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerTarget]:
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        yield ServerTarget(redis_url, database_url, None)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ussd-test-"))
    embedded = EmbeddedServers(data_dir, durable=False)
    try:
        urls = embedded.start()
        yield ServerTarget(redis_url or urls.redis_url, database_url or urls.database_url, embedded)
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _admin(servers: ServerTarget) -> asyncpg.Connection:
    return await asyncpg.connect(servers.database_url_for("postgres"))


@pytest.fixture(scope="session")
async def template_database(servers: ServerTarget) -> str:
    """A database with every migration applied, cloned for each test."""
    admin = await _admin(servers)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(servers.database_url_for(TEMPLATE_DB))
    try:
        await migrate(conn, SCHEMA_PACKAGES)
    finally:
        await conn.close()
    return TEMPLATE_DB


@pytest.fixture
async def database_url(servers: ServerTarget, template_database: str) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test alone."""
    name = f"ussd_test_{os.getpid()}_{next(_db_counter)}"
    admin = await _admin(servers)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY'
        )
    finally:
        await admin.close()
    yield servers.database_url_for(name)
    admin = await _admin(servers)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's own database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def redis_client(servers: ServerTarget) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on an emptied database."""
    client = aioredis.Redis.from_url(servers.redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas, loopback ports), started on first use."""
    data_dir = Path(tempfile.mkdtemp(prefix="ussd-cluster-"))
    cluster = LocalRedisCluster(data_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def cluster_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[aioredis.RedisCluster]:
    """A cluster client on the emptied cluster (every master flushed)."""
    client = aioredis.RedisCluster.from_url(redis_cluster.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def settings(servers: ServerTarget, database_url: str) -> Settings:
    """Service settings pointing at this test's Redis and database."""
    return Settings(redis_url=servers.redis_url, database_url=database_url, menu_file=MENU_FILE)


@pytest.fixture
async def client(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[TestClient]:
    """An HTTP client talking to a real running app (real sockets, real servers)."""
    # Periodic tasks (sweepers) are left out: tests run them when they mean to.
    app = create_app(settings, background=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
