"""SMS JOIN / ВСТУПИТЬ on 4555, the welcome SMS it brings, and a blocked number's replies."""

# ruff: noqa: RUF001 - Cyrillic command words and replies are what these tests check

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sms_harness import RECIPIENT, SENDER, THIRD, FakeGateway, Phone, available, member

import ledger
from ussd_service.notifier import Notifier
from ussd_service.sms_desk import Command, CommandKind, parse_command

WELCOME_RU = "Вы в программе! Баланс: 0 баллов. *111*455# или ПОМОЩЬ на 4555"
WELCOME_EN = (
    "Welcome to the bonus programme! Balance: 0 points. Menu: dial *111*455#. Or text HELP to 4555."
)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("ВСТУПИТЬ", "ru"),
        ("вступить!", "ru"),
        ("ВCТУПИТЬ", "ru"),  # a Latin C among the Cyrillic letters
        ("Vstupit", "ru"),
        ("JOIN", "en"),
        ("join.", "en"),
    ],
)
def test_parse_join(text: str, language: str) -> None:
    assert parse_command(text) == Command(CommandKind.JOIN, language=language)


def test_join_with_more_words_is_not_a_join() -> None:
    assert parse_command("JOIN 79161234567").kind is CommandKind.HELP


async def welcomes(pool: asyncpg.Pool) -> list[ledger.OutboxMessage]:
    return [m for m in await ledger.list_outbox(pool) if m.event == "welcome"]


@pytest.mark.parametrize(
    ("word", "reply", "again", "language"),
    [
        (
            "ВСТУПИТЬ",
            "Вы вступили в бонусную программу!",
            "Вы уже в программе. Баланс - ответьте БАЛАНС",
            "ru",
        ),
        (
            "join",
            "You have joined the bonus programme!",
            "You are already a member. Reply BALANCE for your balance.",
            "en",
        ),
    ],
)
async def test_join_by_sms_once_with_one_welcome(
    client: TestClient, pg_pool: asyncpg.Pool, word: str, reply: str, again: str, language: str
) -> None:
    phone = Phone(client, SENDER)
    assert await phone.send(word, "j-1") == reply
    # The gateway redelivers the same message: the same answer, nothing new.
    assert await phone.send(word, "j-1") == reply
    # A second JOIN, another message: already a member.
    assert await phone.send(word, "j-2") == again
    subscriber = await ledger.get_subscriber(pg_pool, SENDER)
    assert subscriber is not None
    assert (subscriber.status, subscriber.language) == ("active", language)
    record = await ledger.enrollment_record(pg_pool, SENDER)
    assert record is not None
    assert record.channel == "self"
    [welcome] = await welcomes(pg_pool)
    assert (welcome.msisdn, welcome.payload) == (SENDER, {"language": language, "points": 0})
    assert await ledger.check(pg_pool) == []


async def test_join_keeps_a_language_chosen_before(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    assert (await ledger.set_language(pg_pool, THIRD, "en", key="lang-1")).ok
    assert await Phone(client, THIRD).send("ВСТУПИТЬ", "j-3") == (
        "You have joined the bonus programme!"
    )


async def test_the_welcome_arrives_in_the_members_language(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    fake, _ = gateway
    await Phone(client, SENDER).send("ВСТУПИТЬ", "w-1")
    await Phone(client, RECIPIENT).send("JOIN", "w-2")
    await notifier.run_once()
    clock.advance(timedelta(minutes=1))
    await notifier.run_once()  # nothing twice
    assert fake.texts_to(SENDER) == [WELCOME_RU]
    assert fake.texts_to(RECIPIENT) == [WELCOME_EN]
    assert len(WELCOME_RU) <= 70  # one SMS


async def test_help_tells_a_stranger_how_to_join_and_a_member_what_to_do(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    assert await Phone(client, SENDER).send("HELP") == (
        "Чтобы вступить в бонусную программу, ответьте ВСТУПИТЬ"
    )
    # Someone who chose English (in the menu) but has not joined yet.
    assert (await ledger.set_language(pg_pool, THIRD, "en", key="lang-2")).ok
    assert await Phone(client, THIRD).send("help") == (
        "To join the bonus programme, reply JOIN. Or dial *111*455#"
    )
    await member(pg_pool, RECIPIENT, language="en")
    member_help = await Phone(client, RECIPIENT).send("?")
    assert member_help.startswith("GIFT number points - give. GIFT - accept.")


# -- a blocked number ------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "reply"),
    [("ru", "Бонусный счёт заблокирован."), ("en", "Your bonus account is blocked.")],
)
@pytest.mark.parametrize("text", ["ВСТУПИТЬ", "JOIN", "BALANCE", "DAR", "NET", "HELP",
                                  "DAR 79031112233 10"])  # fmt: skip
async def test_a_blocked_number_gets_the_blocked_reply_to_everything(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, reply: str, text: str
) -> None:
    await member(pg_pool, SENDER, points=100, language=language)
    await member(pg_pool, THIRD)
    assert (await ledger.block(pg_pool, SENDER, key="b-1", reason="fraud")).ok
    assert await Phone(client, SENDER).send(text, "b-msg") == reply
    assert (await ledger.get_subscriber(pg_pool, SENDER)).status == "blocked"  # type: ignore[union-attr]
    assert await welcomes(pg_pool) == []
    assert (await ledger.pending_gifts(pg_pool, THIRD)).unwrap().count == 0


@pytest.mark.parametrize(
    ("language", "reply"),
    [("ru", "Получатель не в программе."), ("en", "The recipient is not in the programme.")],
)
async def test_a_gift_to_a_blocked_number_is_refused(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, reply: str
) -> None:
    await member(pg_pool, SENDER, points=500, language=language)
    await member(pg_pool, THIRD)
    assert (await ledger.block(pg_pool, THIRD, key="b-2", reason="fraud")).ok
    assert await Phone(client, SENDER).send("DAR 79031112233 100", "g-1") == reply
    summary = await ledger.subscriber_summary(pg_pool, SENDER)
    assert summary is not None
    assert summary.balance.available == 500


async def test_a_gift_waiting_for_a_member_who_is_blocked_goes_back_with_an_sms(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, _ = gateway
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT, language="en", points=300)
    await member(pg_pool, THIRD)
    await Phone(client, SENDER).send("DAR 79031112233 100", "g-2")
    await Phone(client, RECIPIENT).send("GIFT 79031112233 50", "g-3")
    assert (await ledger.block(pg_pool, THIRD, key="b-3", reason="fraud")).ok
    await notifier.run_once()
    assert "Вам вернулись 100 баллов за подарок." in fake.texts_to(SENDER)
    assert "50 points from your gift are back on your balance." in fake.texts_to(RECIPIENT)
    assert await available(pg_pool, SENDER) == 500
    # The blocked member is told nothing about the returned gifts.
    assert [t for t in fake.texts_to(THIRD) if "вернул" in t] == []
