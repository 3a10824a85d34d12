"""Whole conversations through each gateway dialect: screens and the ledger afterwards."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import (
    DIALECTS,
    TwilioPhone,
    assert_sound,
    available,
    local_form,
    make_phone,
    member,
    new_msisdn,
)

import ledger

pytestmark = pytest.mark.parametrize("dialect", DIALECTS)


async def test_balance(client: TestClient, pg_pool: asyncpg.Pool, dialect: str) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 1234)
    phone = make_phone(dialect, client, caller)

    reply = await phone.begin()
    assert not reply.final
    assert reply.has("Бонусы", "Баланс", "1")
    reply = await phone.send("1")
    assert not reply.final
    assert reply.has("Баланс: 1 234")
    assert "Сгорят 1 234" in reply.text  # the accrual's lot expires, and the screen says when
    reply = await phone.send("1")
    assert reply.has("Бонусы")

    assert await available(pg_pool, caller) == 1234
    await assert_sound(pg_pool)


async def test_gift_then_the_recipient_accepts_through_the_menu(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)

    phone = make_phone(dialect, client, sender)
    await phone.begin()
    reply = await phone.send("4")
    assert reply.has("омер получателя")  # "Номер получателя (8916...):", "Введите номер..."
    reply = await phone.send(local_form(recipient))
    assert reply.has("Сколько баллов")
    reply = await phone.send("100")
    assert "Подарить 100" in reply.text
    assert not reply.final
    reply = await phone.send("1")
    assert reply.final
    assert reply.has("Подарок отправлен")

    assert await available(pg_pool, sender) == 900
    pending = await ledger.pending_gifts(pg_pool, recipient)
    assert [item.points for item in pending.value.items] == [100]

    other = make_phone(dialect, client, recipient)
    reply = await other.begin()
    assert reply.has("Бонусы")
    reply = await other.send("5")  # on USSD, option 5 is on the menu's second page

    assert reply.has("Подарки вам", "100")
    reply = await other.send("1")
    assert reply.has("100", "Принять", "Отклонить")
    reply = await other.send("1")
    assert reply.final
    assert reply.has("Принято! Баланс: 100")

    assert await available(pg_pool, recipient) == 100
    assert await available(pg_pool, sender) == 900
    assert (await ledger.pending_gifts(pg_pool, recipient)).value.items == []
    await assert_sound(pg_pool)


async def test_redemption_of_a_catalogue_reward(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    await ledger.load_catalog(pg_pool)
    caller = new_msisdn()
    await member(pg_pool, caller, 1000)
    minutes = (await ledger.list_catalog(pg_pool, language="ru", category="minutes")).value.items
    first = minutes[0]

    phone = make_phone(dialect, client, caller)
    await phone.begin()
    reply = await phone.send("3")
    assert reply.has("Награды", "Минуты")
    reply = await phone.send("1")
    assert reply.has("Выберите награду", first.title)
    reply = await phone.send("1")
    assert reply.has(first.title, str(first.price))
    assert not reply.final
    reply = await phone.send("1")
    assert reply.final
    remaining = 1000 - first.price
    assert reply.has(f"Готово: {first.title}", f"Остаток: {remaining}")

    assert await available(pg_pool, caller) == remaining
    rows = await pg_pool.fetch("SELECT reward_code, status FROM redemptions")
    assert [(r["reward_code"], r["status"]) for r in rows] == [(first.code, "fulfilled")]
    await assert_sound(pg_pool)


async def test_join_the_programme(client: TestClient, pg_pool: asyncpg.Pool, dialect: str) -> None:
    caller = new_msisdn()
    phone = make_phone(dialect, client, caller)

    reply = await phone.begin()
    assert reply.has("Вы ещё не в программе", "Вступить")
    reply = await phone.send("1")
    assert reply.has("Вступить в программу?")
    reply = await phone.send("1")
    assert reply.has("Готово! Вы в программе бонусов.")
    reply = await phone.send("1")
    assert reply.has("Бонусы", "Баланс")

    subscriber = await ledger.get_subscriber(pg_pool, caller)
    assert subscriber is not None
    assert subscriber.status == "active"
    assert await available(pg_pool, caller) == 0
    await assert_sound(pg_pool)


async def test_language_switch_then_the_next_screens_are_english(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 50)
    phone = make_phone(dialect, client, caller)

    reply = await phone.begin()
    assert reply.has("Бонусы")
    reply = await phone.send("6")
    assert reply.has("Русский", "English")
    reply = await phone.send("2")
    assert reply.has("Bonus points", "Balance")
    assert "Бонусы" not in reply.text
    if isinstance(phone, TwilioPhone):
        assert 'language="en-US"' in reply.raw
        assert "ru-RU" not in reply.raw
    reply = await phone.send("1")
    assert reply.has("Balance: 50 points")

    subscriber = await ledger.get_subscriber(pg_pool, caller)
    assert subscriber is not None
    assert subscriber.language == "en"
    # A new session starts in the subscriber's language.
    again = make_phone(dialect, client, caller)
    reply = await again.begin()
    # (Gateways that never report drops get the resume offer, in English too.)
    assert reply.text.startswith(("Bonus points", "Continue where you left off")), reply.text
    await assert_sound(pg_pool)


async def test_operator_handoff_with_breadcrumb_claim_and_close(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 700)
    phone = make_phone(dialect, client, caller)

    await phone.begin()
    await phone.send("1")  # balance
    await phone.send("1")  # back to the main menu
    operator_key = "0" if isinstance(phone, TwilioPhone) else "7"
    reply = await phone.send(operator_key)
    assert reply.final
    if isinstance(phone, TwilioPhone):
        assert reply.has("оператор")  # "connecting you", then <Dial>
        assert reply.dial == "+78005550890"
    else:
        assert reply.has("перезвонит")  # USSD: a callback request
        assert reply.dial is None

    resp = await client.get("/v1/handoffs", params={"status": "waiting"})
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert len(items) == 1
    item = items[0]
    assert item["msisdn"] == caller
    assert item["channel"] == ("ivr" if isinstance(phone, TwilioPhone) else "ussd")
    assert item["reason"] == "caller_request"
    assert item["language"] == "ru"
    assert item["status"] == "waiting"
    assert item["breadcrumb"] == ["main:1", "balance_expiring:1", f"main:{operator_key}"]
    assert item["balance"]["available"] == 700

    claim = await client.post(f"/v1/handoffs/{item['id']}/claim", headers={"X-Operator": "anna"})
    assert claim.status == 200
    claimed = await claim.json()
    assert claimed["status"] == "claimed"
    assert claimed["claimed_by"] == "anna"
    again = await client.post(f"/v1/handoffs/{item['id']}/claim")
    assert again.status == 409
    waiting = await (await client.get("/v1/handoffs", params={"status": "waiting"})).json()
    assert waiting["items"] == []

    close = await client.post(f"/v1/handoffs/{item['id']}/close")
    assert close.status == 200
    assert (await close.json())["status"] == "closed"
    assert (await client.post(f"/v1/handoffs/{item['id']}/close")).status == 409
    assert (await client.post(f"/v1/handoffs/{item['id']}/claim")).status == 409
    assert (await client.post("/v1/handoffs/999999/claim")).status == 404

    assert await available(pg_pool, caller) == 700
    await assert_sound(pg_pool)
