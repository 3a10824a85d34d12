# ruff: noqa: RUF001 - Cyrillic screen texts are what these tests check
"""Backends failing mid-session: polite final screens, no 500, no hop past its deadline.

PostgreSQL outages use a separate embedded server that the tests stop, freeze
(SIGSTOP: a server that accepts nothing and answers nothing) and start again;
the shared test server is never touched.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hops_harness import (
    DIALECTS,
    NativePhone,
    Reply,
    TwilioPhone,
    assert_sound,
    available,
    count_rows,
    local_form,
    make_phone,
    member,
    new_msisdn,
    postgres_processes,
    signal_all,
)

from embedded_servers import EmbeddedServers
from ussd_service import handoffs
from ussd_service.hop import Deadlines

# Scheduling noise on a loaded 2-core machine; the bound is about hanging, not speed.
MARGIN_S = 1.5
USSD_DEADLINE_S = Deadlines().ussd_s


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_redis_flushed_mid_session_ends_politely_and_moves_nothing(
    client: TestClient, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, dialect: str
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 500)
    await member(pg_pool, recipient)
    phone = make_phone(dialect, client, sender)
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    reply = await phone.send("100")
    assert "Подарить 100" in reply.text

    await redis_client.flushdb()
    reply = await phone.send("1")

    assert reply.status == 200, reply.raw
    assert reply.final
    assert "Сессия истекла" in reply.text
    if isinstance(phone, TwilioPhone):
        assert "<Hangup" in reply.raw
        assert "Позвоните ещё раз" in reply.text
    else:
        assert "*111*455#" in reply.text
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 0
    assert await available(pg_pool, sender) == 500
    # Dialling again starts afresh.
    again = make_phone(dialect, client, sender)
    reply = await again.begin()
    assert reply.has("Бонусы")
    await assert_sound(pg_pool)


# -- PostgreSQL outages ---------------------------------------------------------


async def _timed(coro: asyncio.Future[Reply] | object) -> tuple[Reply, float]:
    started = time.perf_counter()
    reply = await coro  # type: ignore[misc]
    return reply, time.perf_counter() - started


async def _seed(url: str, *numbers: tuple[str, int]) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        for msisdn, points in numbers:
            await member(pool, msisdn, points)
    finally:
        await pool.close()


async def _handoff_rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT msisdn, channel, reason, breadcrumb FROM handoffs")
    finally:
        await conn.close()


async def test_postgres_stopped_mid_session_try_later_and_operator_queued_until_it_returns(
    outage_db: tuple[EmbeddedServers, str],
    outage_client: TestClient,
    redis_client: aioredis.Redis,
) -> None:
    servers, url = outage_db
    sender, recipient = new_msisdn(), new_msisdn()
    await _seed(url, (sender, 800), (recipient, 0))

    giver = NativePhone(outage_client, sender)
    await giver.begin()
    await giver.send("4")
    await giver.send(local_form(recipient))
    reply = await giver.send("100")
    assert "Подарить 100" in reply.text
    asker = NativePhone(outage_client, sender)
    reply = await asker.begin()
    assert reply.has("Бонусы")

    servers.stop()

    # An operation that needs the ledger: the menu's "try later", at once.
    reply, elapsed = await _timed(giver.send("1"))
    assert reply.status == 200, reply.raw
    assert reply.final
    assert "Попробуйте позже" in reply.text
    assert elapsed < USSD_DEADLINE_S + MARGIN_S
    # A caller asking for a person: queued in Redis while PostgreSQL is away.
    reply, elapsed = await _timed(asker.send("7"))
    assert reply.status == 200, reply.raw
    assert reply.final
    assert "перезвонит" in reply.text  # USSD: a callback request
    assert elapsed < USSD_DEADLINE_S + MARGIN_S
    assert await redis_client.llen(handoffs.PENDING_KEY) == 1
    # A new session while the ledger is down.
    reply, elapsed = await _timed(NativePhone(outage_client, new_msisdn()).begin())
    assert reply.status == 200, reply.raw
    assert reply.final
    assert "Попробуйте позже" in reply.text
    assert elapsed < USSD_DEADLINE_S + MARGIN_S

    servers.start()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        assert await handoffs.flush_deferred(redis_client, pool) == 1
        assert await redis_client.llen(handoffs.PENDING_KEY) == 0
        # Written once: flushing again (e.g. a second process) adds nothing.
        assert await handoffs.flush_deferred(redis_client, pool) == 0
        rows = await _handoff_rows(url)
        assert [(r["msisdn"], r["channel"], r["reason"]) for r in rows] == [
            (sender, "ussd", "caller_request")
        ]
        assert "main:7" in rows[0]["breadcrumb"]
        assert await count_rows(pool, "SELECT count(*) FROM gifts") == 0
        assert await available(pool, sender) == 800
        await assert_sound(pool)
    finally:
        await pool.close()
    # The service itself sees the handoff and serves again.
    listed = await (await outage_client.get("/v1/handoffs?status=waiting")).json()
    assert [item["msisdn"] for item in listed["items"]] == [sender]
    # The gift in flight when PostgreSQL stopped has an unknown outcome: the
    # sender's redial offers to go back to its confirmation, keys kept.
    redial = NativePhone(outage_client, sender)
    reply = await redial.begin()
    assert reply.has("Продолжить с места"), reply.text
    reply = await redial.send("1")
    assert reply.has("Подарить 100"), reply.text
    reply = await NativePhone(outage_client, recipient).begin()
    assert reply.has("Бонусы")


@pytest.mark.parametrize("dialect", ["native", "twilio"])
async def test_postgres_frozen_no_hop_hangs_past_its_deadline(
    outage_db: tuple[EmbeddedServers, str],
    outage_client: TestClient,
    redis_client: aioredis.Redis,
    dialect: str,
) -> None:
    """A server that accepts nothing and answers nothing (SIGSTOP) is the worst outage."""
    servers, url = outage_db
    caller, recipient = new_msisdn(), new_msisdn()
    await _seed(url, (caller, 800), (recipient, 0))
    phone = make_phone(dialect, outage_client, caller)
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    reply = await phone.send("100")
    assert "Подарить 100" in reply.text
    deadline = Deadlines().for_channel("ivr" if isinstance(phone, TwilioPhone) else "ussd")

    frozen = postgres_processes(servers)
    signal_all(frozen, signal.SIGSTOP)
    try:
        reply, elapsed = await _timed(phone.send("1"))
        fresh, fresh_elapsed = await _timed(make_phone(dialect, outage_client, caller).begin())
    finally:
        signal_all(frozen, signal.SIGCONT)

    assert reply.status == 200, reply.raw
    assert reply.final
    assert "Попробуйте позже" in reply.text or "недоступен" in reply.text
    assert elapsed < deadline + MARGIN_S
    assert fresh.status == 200, fresh.raw
    if dialect == "native":
        # USSD: the gift's outcome is unknown, so the redial offers to go back to it.
        assert "Продолжить с места" in fresh.text, fresh.text
    else:
        assert fresh.final
    assert fresh_elapsed < deadline + MARGIN_S
    # The gift may or may not have reached the ledger before the freeze; the
    # ledger stays sound either way and the subscriber can find out.
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await assert_sound(pool)
    finally:
        await pool.close()
