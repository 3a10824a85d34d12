"""Regressions caught by the first hop tests: races, resumes, frozen backends, IVR voices."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hops_harness import (
    NativePhone,
    TwilioPhone,
    assert_sound,
    count_rows,
    local_form,
    member,
    new_msisdn,
    postgres_processes,
    signal_all,
)

from embedded_servers import EmbeddedServers
from ussd_service import handoffs
from ussd_service.operations import DEFAULT_DEADLINE_S

ROUNDS = 8
RESUME = "Продолжить"  # resume_offer in menu_definitions.yaml


async def test_race_between_confirm_and_cancel_never_sends_a_gift_the_caller_did_not_see(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    """At the gift confirm screen, "1" (yes) and "2" (no) arrive at once.

    Exactly one of them is the session's answer. A gift exists if and only if
    some reply told the caller it was sent.
    """
    sender = new_msisdn()
    await member(pg_pool, sender, 100_000)
    mismatches = []
    for _ in range(ROUNDS):
        recipient = new_msisdn()
        await member(pg_pool, recipient)
        phone = NativePhone(client, sender)
        await phone.begin()
        await phone.send("4")
        await phone.send(local_form(recipient))
        await phone.send("10")
        before = await count_rows(pg_pool, "SELECT count(*) FROM gifts")
        yes, no = phone.input_body("1"), phone.input_body("2")
        replies = await asyncio.gather(phone.post_json(yes), phone.post_json(no))
        told = any("Подарок отправлен" in r.text for r in replies)
        sent = await count_rows(pg_pool, "SELECT count(*) FROM gifts") - before
        if sent != int(told):
            mismatches.append((sent, [r.text for r in replies]))
    assert mismatches == []
    await assert_sound(pg_pool)


async def test_frozen_postgres_operation_deadline_is_kept_and_the_operator_request_is_queued(
    outage_db: tuple[EmbeddedServers, str],
    outage_client: TestClient,
    redis_client: aioredis.Redis,
) -> None:
    """PostgreSQL stops answering (SIGSTOP) while the caller is in the main menu.

    Asking for an operator needs a balance snapshot (1.5 s operation deadline)
    and a handoff write (1 s): both well inside the 4 s hop. The caller must
    hear the operator screen and the handoff must wait in Redis.
    """
    servers, url = outage_db
    caller = new_msisdn()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await member(pool, caller, 300)
    finally:
        await pool.close()
    phone = NativePhone(outage_client, caller)
    await phone.begin()
    reply = await phone.send("1")  # balance: the app's pool now holds a live connection
    assert "Баланс: 300" in reply.text
    await phone.send("1")

    frozen = postgres_processes(servers)
    signal_all(frozen, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        reply = await phone.send("7")
        elapsed = time.perf_counter() - started
        queued = await redis_client.llen(handoffs.PENDING_KEY)
    finally:
        signal_all(frozen, signal.SIGCONT)

    assert (reply.text.startswith("Оператор перезвонит"), queued) == (True, 1), reply.text
    assert elapsed < DEFAULT_DEADLINE_S + handoffs.WRITE_TIMEOUT_S + 0.5


async def test_ivr_final_screens_are_spoken_in_the_callers_language(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    """Every <Say> carries the YAML's voice and language, final screens included.

    Without them Twilio reads the Russian "gift sent" or "connecting you to an
    operator" with its default en-US voice.
    """
    caller, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, caller, 500)
    await member(pg_pool, recipient)
    phone = TwilioPhone(client, caller)
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    await phone.send("10")
    reply = await phone.send("1")
    assert reply.final
    assert "Подарок отправлен" in reply.text
    says = reply.raw.count("<Say")
    assert reply.raw.count('language="ru-RU"') == says, reply.raw

    english = new_msisdn()
    await member(pg_pool, english, 0, language="en")
    phone = TwilioPhone(client, english)
    await phone.begin()
    reply = await phone.send("0")
    assert reply.dial is not None
    assert "Connecting you to an operator" in reply.text
    assert 'language="en-US"' in reply.raw, reply.raw


async def test_drop_racing_the_confirm_then_resume_never_repeats_the_gift(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    """The gateway drops the session while the confirm hop is being answered."""
    sender = new_msisdn()
    await member(pg_pool, sender, 100_000)
    for _ in range(4):
        recipient = new_msisdn()
        await member(pg_pool, recipient)
        before = await count_rows(pg_pool, "SELECT count(*) FROM gifts")
        phone = NativePhone(client, sender)
        await _to_gift_confirm(phone, recipient)
        confirm = phone.input_body("1")
        first, _ = await asyncio.gather(phone.post_json(confirm), phone.drop())
        again = NativePhone(client, sender)
        reply = await again.begin()
        if reply.text.startswith(RESUME):
            reply = await again.send("1")
            if "Подарить 10" in reply.text:
                reply = await again.send("1")
        gifts = await count_rows(pg_pool, "SELECT count(*) FROM gifts") - before
        assert gifts <= 1, (first.text, reply.text)
        pending = await pg_pool.fetchval(
            "SELECT count(*) FROM gifts g JOIN subscribers s ON s.id = g.recipient_id"
            " WHERE s.msisdn = $1",
            recipient,
        )
        assert pending == gifts
    await assert_sound(pg_pool)


async def _to_gift_confirm(phone: NativePhone, recipient: str) -> None:
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    reply = await phone.send("10")
    assert "Подарить 10" in reply.text


async def test_native_event_of_the_wrong_json_type_is_a_400(client: TestClient) -> None:
    """An unhashable ``event`` (a list) once reached a dict lookup and gave a 500."""
    for event in ([], {}, 1, None):
        resp = await client.post("/ussd", json={"event": event})
        assert resp.status == 400, (event, await resp.text())
        assert "event" in await resp.text()


async def test_ivr_session_expired_is_spoken_in_the_menus_voice(client: TestClient) -> None:
    """The dialogue's own screens (outside the tree) carry voice and language too."""
    resp = await client.post(
        "/ivr/twilio?seq=5",
        data={"CallSid": "CA-gone", "From": "+79161234567", "To": "0890", "Digits": "1"},
    )
    body = await resp.text()
    assert resp.status == 200
    assert 'language="ru-RU"' in body
    assert "<Hangup" in body
