"""Fixtures of the hop tests: a PostgreSQL server of their own for outages."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hops_harness import postgres_processes, signal_all

from embedded_servers import EmbeddedServers, ServerUrls
from ussd_service.app import create_app
from ussd_service.backends import apply_migrations
from ussd_service.config import Settings

MENU_FILE = Path(__file__).resolve().parents[2] / "menu_definitions.yaml"
_db_names = itertools.count()


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[tuple[EmbeddedServers, ServerUrls]]:
    """A PostgreSQL server of this module alone, so stopping it harms no other test."""
    data_dir = Path(tempfile.mkdtemp(prefix="ussd-hops-pg-"))
    servers = EmbeddedServers(data_dir, durable=False, redis=False)
    try:
        urls = servers.start()
        yield servers, urls
    finally:
        servers.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def outage_db(
    own_postgres: tuple[EmbeddedServers, ServerUrls],
) -> AsyncIterator[tuple[EmbeddedServers, str]]:
    """A fresh migrated database on the module's server (running again afterwards)."""
    servers, urls = own_postgres
    servers.start()  # running again if a previous test left it stopped
    name = f"hops_outage_{os.getpid()}_{next(_db_names)}"
    admin = await asyncpg.connect(urls.database_url_for("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urls.database_url_for(name)
    await apply_migrations(url)
    yield servers, url
    if servers.pids:
        signal_all(postgres_processes(servers), signal.SIGCONT)
    servers.start()


@pytest.fixture
async def outage_client(
    outage_db: tuple[EmbeddedServers, str], servers: object, redis_client: aioredis.Redis
) -> AsyncIterator[TestClient]:
    _, url = outage_db
    settings = Settings(
        redis_url=servers.redis_url,  # type: ignore[attr-defined]
        database_url=url,
        menu_file=MENU_FILE,
    )
    async with TestClient(TestServer(create_app(settings, background=False))) as test_client:
        yield test_client
