"""Gateways retry hops: the same hop five times gives one reply and one ledger effect.

Two different hops of one session at once: one wins, the other gets a reply
consistent with what happened, and the session still works afterwards.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import (
    DIALECTS,
    NativePhone,
    Phone,
    assert_sound,
    available,
    count_rows,
    local_form,
    make_phone,
    member,
    new_msisdn,
    same_hop,
)

import ledger

REPEATS = 5


async def _at_gift_confirm(phone: Phone, recipient: str) -> None:
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    reply = await phone.send("100")
    assert "Подарить 100" in reply.text


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_same_gift_confirm_five_times_gives_one_gift(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str, mode: str
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = make_phone(dialect, client, sender)
    await _at_gift_confirm(phone, recipient)

    send = same_hop(phone, "1")
    if mode == "sequential":
        replies = [await send() for _ in range(REPEATS)]
    else:
        replies = list(await asyncio.gather(*(send() for _ in range(REPEATS))))

    assert all(r.status == 200 for r in replies), replies
    assert {r.raw for r in replies} == {replies[0].raw}, replies
    assert replies[0].final
    assert "Подарок отправлен" in replies[0].text
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    assert await available(pg_pool, sender) == 900
    await assert_sound(pg_pool)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_retried_begin_does_not_start_a_second_session(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 10)
    phone = make_phone(dialect, client, caller)
    replies = list(await asyncio.gather(*(phone.begin() for _ in range(REPEATS))))
    assert {r.raw for r in replies} == {replies[0].raw}
    assert "Бонусы" in replies[0].text
    reply = await phone.send("1")
    assert "Баланс: 10" in reply.text


async def test_concurrent_retries_of_a_redemption_redeem_once(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await ledger.load_catalog(pg_pool)
    caller = new_msisdn()
    await member(pg_pool, caller, 1000)
    phone = NativePhone(client, caller)
    await phone.begin()
    await phone.send("3")
    await phone.send("1")
    reply = await phone.send("1")
    assert not reply.final
    send = same_hop(phone, "1")
    replies = list(await asyncio.gather(*(send() for _ in range(REPEATS))))
    assert {r.raw for r in replies} == {replies[0].raw}
    assert "Готово" in replies[0].text
    assert await count_rows(pg_pool, "SELECT count(*) FROM redemptions") == 1
    price = await pg_pool.fetchval("SELECT points FROM redemptions")
    assert await available(pg_pool, caller) == 1000 - price
    await assert_sound(pg_pool)


async def test_two_different_hops_at_once_one_wins_and_the_session_goes_on(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 300)
    for _ in range(5):
        phone = NativePhone(client, caller)
        await phone.begin()
        first, second = phone.input_body("1"), phone.input_body("3")
        replies = await asyncio.gather(phone.post_json(first), phone.post_json(second))
        assert all(r.status == 200 for r in replies), replies
        assert not any(r.final for r in replies), replies
        # The winner moved the session: the loser's reply is the screen after both
        # inputs in some order, never a reply built on the state the winner replaced.
        texts = sorted(r.text for r in replies)
        balance_won = any("Баланс: 300" in t for t in texts)
        spend_won = any(t.startswith("Награды") for t in texts)
        assert balance_won or spend_won, texts
        # The session still works: home, then balance.
        reply = await phone.send("00")
        assert reply.text.startswith("Бонусы"), reply
        reply = await phone.send("1")
        assert "Баланс: 300" in reply.text
    assert await available(pg_pool, caller) == 300
    await assert_sound(pg_pool)
