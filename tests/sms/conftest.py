"""Fixtures of the SMS tests: the app with the SMS routes, a fake SMS gateway, a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sms_harness import GATEWAY_PATH, FakeGateway, sms_app, start_gateway

import ledger
from menus import MenuRegistry
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus
from ussd_service.notifier import KannelTransport, Notifier


@pytest.fixture
async def client(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[TestClient]:
    """An HTTP client on the app with the SMS endpoints (real sockets, real servers)."""
    async with TestClient(TestServer(sms_app(settings))) as test_client:
        yield test_client


@pytest.fixture
def clock() -> ledger.ManualClock:
    """The worker's clock, a minute ahead: outbox rows made during the test are due."""
    return ledger.ManualClock(datetime.now(UTC) + timedelta(minutes=1))


@pytest.fixture
def registry(settings: Settings) -> MenuRegistry:
    return load_menus(settings.menu_file)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FakeGateway, str]]:
    """A fake SMS gateway and its send URL."""
    fake = FakeGateway()
    server = await start_gateway(fake)
    try:
        yield fake, str(server.make_url(GATEWAY_PATH))
    finally:
        await server.close()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def notifier(
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    registry: MenuRegistry,
    gateway: tuple[FakeGateway, str],
    http_session: aiohttp.ClientSession,
    clock: ledger.ManualClock,
) -> Notifier:
    """A worker sending to the fake gateway, on the manual clock."""
    transport = KannelTransport(
        http_session, gateway[1], sender="4555", username="svc", password="pw-1234", timeout_s=5
    )
    return Notifier(pg_pool, registry, transport, redis=redis_client, clock=clock)
