"""Joining through the menu sends one welcome SMS; a blocked number meets the blocked screen.

Over every gateway dialect (USSD: Africa's Talking and native; voice: Twilio),
in both languages, with the confirming hop retried by the gateway.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import DIALECTS, assert_sound, make_phone, member, new_msisdn, same_hop

import ledger

pytestmark = pytest.mark.parametrize("dialect", DIALECTS)

JOINED = {"ru": "Готово! Вы в программе бонусов.", "en": "Done! You are in the bonus programme."}
BLOCKED = {
    "ru": "Ваш бонусный счёт заблокирован. Звоните 0890.",
    "en": "Your bonus account is blocked. Please call 0890.",
}


async def welcomes(pool: asyncpg.Pool, msisdn: str) -> list[ledger.OutboxMessage]:
    messages = await ledger.list_outbox(pool)
    return [m for m in messages if m.event == "welcome" and m.msisdn == msisdn]


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_joining_in_the_menu_sends_one_welcome_despite_retries(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str, language: str
) -> None:
    caller = new_msisdn()
    if language == "en":  # chosen in the menu before joining
        assert (await ledger.set_language(pg_pool, caller, "en", key=f"lang-{caller}")).ok
    phone = make_phone(dialect, client, caller)
    await phone.begin()
    await phone.send("1")  # Join
    confirm = same_hop(phone, "1")  # Yes, sent by a gateway that retries
    replies = [await confirm(), *await asyncio.gather(*(confirm() for _ in range(3)))]
    assert {r.raw for r in replies} == {replies[0].raw}
    assert replies[0].has(JOINED[language])

    [welcome] = await welcomes(pg_pool, caller)
    assert welcome.payload == {"language": language, "points": 0}
    record = await ledger.enrollment_record(pg_pool, caller)
    assert record is not None
    assert (record.status, record.channel) == ("active", "self")
    await assert_sound(pg_pool)


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_a_blocked_member_meets_the_blocked_screen(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str, language: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 300, language=language)
    assert (await ledger.block(pg_pool, caller, key=f"block-{caller}", reason="fraud")).ok
    reply = await make_phone(dialect, client, caller).begin()
    assert reply.final
    assert reply.has(BLOCKED[language])
    # Unblocked, the same number is back at the main menu.
    assert (await ledger.unblock(pg_pool, caller, key=f"unblock-{caller}", reason="ok")).ok
    again = await make_phone(dialect, client, caller).begin()
    assert not again.final
    assert not again.has(BLOCKED[language])


async def test_a_blocked_stranger_cannot_join_in_the_menu(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    caller = new_msisdn()
    assert (await ledger.block(pg_pool, caller, key=f"block-{caller}", reason="stolen")).ok
    reply = await make_phone(dialect, client, caller).begin()
    assert reply.final
    assert reply.has(BLOCKED["ru"])
    assert await welcomes(pg_pool, caller) == []
