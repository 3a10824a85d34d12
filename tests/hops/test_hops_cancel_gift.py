"""Gifts I sent (main menu 8) over every dialect: a retried confirmation takes the gift
back once, a gift answered meanwhile says so, and a cancel racing the recipient's SMS
accept has exactly one winner."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import (
    DIALECTS,
    Phone,
    assert_sound,
    available,
    count_rows,
    make_phone,
    member,
    new_msisdn,
    same_hop,
)

import ledger

REPEATS = 5
RACE_ROUNDS = 12


async def _gift(pool: asyncpg.Pool, language: str = "ru") -> tuple[str, str, int]:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pool, sender, 1000, language=language)
    await member(pool, recipient)
    sent = await ledger.gift(pool, sender, recipient, 150, key=f"gift-{sender}")
    return sender, recipient, sent.unwrap().gift_id


async def _at_cancel_confirm(phone: Phone, question: str) -> None:
    await phone.begin()
    await phone.send("8")
    reply = await phone.send("1")
    assert question in reply.text, reply.text


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_same_cancel_confirm_five_times_takes_the_gift_back_once(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str, mode: str
) -> None:
    sender, _, gift_id = await _gift(pg_pool)
    phone = make_phone(dialect, client, sender)
    await _at_cancel_confirm(phone, "Отменить подарок 150 баллов на ")
    send = same_hop(phone, "1")
    if mode == "sequential":
        replies = [await send() for _ in range(REPEATS)]
    else:
        replies = list(await asyncio.gather(*(send() for _ in range(REPEATS))))
    assert all(r.status == 200 for r in replies), replies
    assert {r.raw for r in replies} == {replies[0].raw}
    assert replies[0].final
    assert "Подарок отменён, баллы вернулись. Баланс: 1 000 баллов." in replies[0].text
    assert await available(pg_pool, sender) == 1000
    sql = "SELECT count(*) FROM outbox WHERE event = $1 AND (payload->>'gift_id')::bigint = $2"
    for event in ("gift_returned", "gift_cancelled"):
        assert await count_rows(pg_pool, sql, event, gift_id) == 1
    await assert_sound(pg_pool)


@pytest.mark.parametrize(
    ("answer", "language", "says"),
    [
        ("accept", "ru", "Подарок уже принят, отменить нельзя."),
        ("accept", "en", "The gift was already accepted; it cannot be cancelled."),
        ("decline", "ru", "Подарок уже отклонён, баллы вернулись."),
        ("decline", "en", "The gift was already declined; the points are back."),
    ],
)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_gift_answered_while_the_question_is_asked_says_so(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    dialect: str,
    answer: str,
    language: str,
    says: str,
) -> None:
    sender, recipient, gift_id = await _gift(pg_pool, language)
    phone = make_phone(dialect, client, sender)
    question = "Cancel the gift of 150 points" if language == "en" else "Отменить подарок 150"
    await _at_cancel_confirm(phone, question)
    if answer == "accept":
        assert (await ledger.accept_gift(pg_pool, recipient, gift_id, key="meanwhile")).ok
    else:
        assert (await ledger.decline_gift(pg_pool, recipient, gift_id, key="meanwhile")).ok
    reply = await phone.send("1")
    assert reply.final
    assert says in reply.text
    assert await available(pg_pool, sender) == (850 if answer == "accept" else 1000)
    await assert_sound(pg_pool)


async def test_a_menu_cancel_racing_the_recipients_sms_accept_has_one_winner(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    outcomes: list[str] = []
    for round_ in range(RACE_ROUNDS):
        sender, recipient, gift_id = await _gift(pg_pool)
        phone = make_phone("africastalking", client, sender)
        await _at_cancel_confirm(phone, "Отменить подарок 150")
        sms = {"from": recipient, "to": "4555", "text": "ДАР", "id": f"race-{round_}"}
        cancel, accept = await asyncio.gather(
            phone.send("1"), client.post("/sms/inbound", data=sms)
        )
        accepted = (await accept.text()).startswith("Принято: 150 баллов")
        cancelled = "Подарок отменён" in cancel.text
        assert accepted != cancelled, (cancel.text, await accept.text())
        if accepted:
            assert "Подарок уже принят" in cancel.text
        status = await pg_pool.fetchval("SELECT status FROM gifts WHERE id = $1", gift_id)
        assert status == ("accepted" if accepted else "cancelled")
        assert await available(pg_pool, recipient) == (150 if accepted else 0)
        assert await available(pg_pool, sender) == (850 if accepted else 1000)
        outcomes.append(status)
    assert len(outcomes) == RACE_ROUNDS
    await assert_sound(pg_pool)
