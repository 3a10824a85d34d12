"""A gateway slower than the send timeout: the try fails, the message waits for the next.

Kannel cannot be made slow on demand; the hand-written fake gateway can.
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from sms_harness import RECIPIENT, SENDER, FakeGateway, Phone, member

import ledger
from menus import MenuRegistry
from ussd_service.notifier import KannelTransport, Notifier


async def test_a_send_that_times_out_is_retried_then_goes_out(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    registry: MenuRegistry,
    gateway: tuple[FakeGateway, str],
    http_session: aiohttp.ClientSession,
    clock: ledger.ManualClock,
) -> None:
    fake, url = gateway
    fake.delay_s = 1.0
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "slow-1")
    transport = KannelTransport(
        http_session, url, sender="4555", username="svc", password="pw", timeout_s=0.2
    )
    notifier = Notifier(pg_pool, registry, transport, redis=redis_client, clock=clock)

    report = await notifier.run_once()

    [message] = await ledger.list_outbox(pg_pool)
    assert report.retrying == [message.id]
    assert message.status == "pending"
    assert message.last_error is not None
    assert message.last_error.startswith("gateway unreachable: ")
    assert "Timeout" in message.last_error
    fake.delay_s = 0
    clock.advance(timedelta(hours=1))
    assert (await notifier.run_once()).sent == [message.id]
    # The slow try may have reached the gateway too: at-least-once, as documented.
    assert 1 <= len(fake.accepted) <= 2
