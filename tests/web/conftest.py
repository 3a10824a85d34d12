"""Fixtures of the web tests: the app (no background tasks) and a member or two."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

import ledger
from menus import MenuRegistry
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.keys import MENUS

MEMBER = "+79161234567"
FRIEND = "+79161234568"


@pytest.fixture
async def web_client(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[TestClient]:
    """The app on a real socket; the notification worker is run by the tests."""
    app = create_app(settings, background=False)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
def menus(web_client: TestClient) -> MenuRegistry:
    app = web_client.server.app
    assert app is not None
    return app[MENUS]


@pytest.fixture
async def members(pg_pool: asyncpg.Pool) -> tuple[str, str]:
    """Two members with points (and the shipped catalogue loaded)."""
    await ledger.load_catalog(pg_pool)
    for number, points in ((MEMBER, 500), (FRIEND, 100)):
        await ledger.enroll(pg_pool, number, key=f"seed-enroll-{number}")
        # Seeded members start without their welcome SMS: the outbox holds what
        # the test does (test_account_join_and_block.py has the welcome).
        await pg_pool.execute("DELETE FROM outbox WHERE event = 'welcome' AND msisdn = $1", number)
        await ledger.accrue(pg_pool, number, points, key=f"seed-accrue-{number}")
    return MEMBER, FRIEND
