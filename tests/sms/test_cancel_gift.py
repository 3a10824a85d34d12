# ruff: noqa: RUF001, RUF002 - Cyrillic command words and replies are what these tests check
"""ОТМЕНА / OTMENA / CANCEL on 4555: the sender takes back their newest gift not yet answered.

Over real HTTP against real PostgreSQL and Redis; both sides' SMS through the
notifier to the fake gateway.
"""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from sms_harness import RECIPIENT, SENDER, THIRD, FakeGateway, Phone, available, member

import ledger
from ussd_service.notifier import Notifier
from ussd_service.redis_keys import SMS_REPLY_PREFIX
from ussd_service.sms_desk import Command, CommandKind, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ОТМЕНА", Command(CommandKind.CANCEL)),
        ("отмена!", Command(CommandKind.CANCEL)),
        ("OTMENA", Command(CommandKind.CANCEL)),
        ("Cancel", Command(CommandKind.CANCEL)),
        ("ОТМEНА", Command(CommandKind.CANCEL)),  # a Latin E among Cyrillic letters
        ("ОТМЕНА +7 916 765-43-21", Command(CommandKind.CANCEL, "+7 916 765-43-21")),
        ("cancel 89167654321", Command(CommandKind.CANCEL, "89167654321")),
        ("ОТМЕНА что-то", Command(CommandKind.CANCEL, "что-то")),  # the desk answers its usage
    ],
)
def test_parse_cancel(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


async def _two_gifts(pool: asyncpg.Pool, language: str = "ru") -> tuple[int, int]:
    """SENDER (500 points) gives 100 to RECIPIENT, then 40 to THIRD (the newest)."""
    await member(pool, SENDER, points=500, language=language)
    await member(pool, RECIPIENT)
    await member(pool, THIRD, language="en")
    first = (await ledger.gift(pool, SENDER, RECIPIENT, 100, key="g-1")).unwrap()
    second = (await ledger.gift(pool, SENDER, THIRD, 40, key="g-2")).unwrap()
    return first.gift_id, second.gift_id


async def _pending_to(pool: asyncpg.Pool) -> list[str]:
    sent = (await ledger.sent_gifts(pool, SENDER)).unwrap()
    return [g.recipient for g in sent.items]


@pytest.mark.parametrize(
    ("language", "text", "reply"),
    [
        ("ru", "ОТМЕНА", "Отменён: 40 баллов на +7 903 111-22-33. Баланс: 400 баллов."),
        ("ru", "otmena", "Отменён: 40 баллов на +7 903 111-22-33. Баланс: 400 баллов."),
        ("en", "CANCEL", "Gift of 40 points to +7 903 111-22-33 cancelled. Balance: 400 points."),
    ],
)
async def test_cancel_takes_back_the_newest_pending_gift(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, text: str, reply: str
) -> None:
    await _two_gifts(pg_pool, language)
    assert await available(pg_pool, SENDER) == 360
    assert await Phone(client, SENDER).send(text, "c-1") == reply
    assert await available(pg_pool, SENDER) == 400
    assert await _pending_to(pg_pool) == [RECIPIENT]
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize(
    ("language", "reply"),
    [
        ("ru", "Отменён: 100 баллов на +7 916 765-43-21. Баланс: 460 баллов."),
        ("en", "Gift of 100 points to +7 916 765-43-21 cancelled. Balance: 460 points."),
    ],
)
async def test_cancel_with_a_number_takes_back_the_gift_to_that_number(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, reply: str
) -> None:
    await _two_gifts(pg_pool, language)
    assert await Phone(client, SENDER).send("ОТМЕНА 8 (916) 765-43-21", "c-1") == reply
    assert await _pending_to(pg_pool) == [THIRD]
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize(
    ("language", "text", "reply"),
    [
        ("ru", "ОТМЕНА", "Нет подарков, ждущих ответа: отменять нечего."),
        ("en", "CANCEL", "None of your gifts is waiting for an answer: nothing to cancel."),
        ("ru", "ОТМЕНА +79031112233", "Нет подарков на +7 903 111-22-33, ждущих ответа."),
        (
            "en",
            "cancel 89031112233",
            "No gift of yours to +7 903 111-22-33 is waiting for an answer.",
        ),
    ],
)
async def test_nothing_to_cancel(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, text: str, reply: str
) -> None:
    await member(pg_pool, SENDER, points=500, language=language)
    await member(pg_pool, RECIPIENT)
    await member(pg_pool, THIRD)
    # A gift to someone else, and one already answered, are not cancellable by number.
    sent = (await ledger.gift(pg_pool, SENDER, RECIPIENT, 100, key="g-1")).unwrap()
    if "+7" in text or "8903" in text:
        assert (await ledger.gift(pg_pool, SENDER, THIRD, 10, key="g-2")).ok
        assert (await ledger.accept_gift(pg_pool, THIRD, key="a-2")).ok
    else:
        assert (await ledger.decline_gift(pg_pool, RECIPIENT, sent.gift_id, key="d-1")).ok
    before = await available(pg_pool, SENDER)
    assert await Phone(client, SENDER).send(text, "c-1") == reply
    assert await available(pg_pool, SENDER) == before


@pytest.mark.parametrize(
    ("language", "text", "reply"),
    [
        (
            "ru",
            "ОТМЕНА abc",
            "ОТМЕНА - отменить последний подарок, ОТМЕНА номер - подарок на номер.",
        ),
        (
            "ru",
            "ОТМЕНА 12 34",
            "ОТМЕНА - отменить последний подарок, ОТМЕНА номер - подарок на номер.",
        ),
        (
            "en",
            "CANCEL 79167654321 100",
            "CANCEL - cancel your latest gift. CANCEL number - your latest gift to that number.",
        ),
    ],
)
async def test_malformed_cancel_answers_the_syntax_and_moves_nothing(
    client: TestClient, pg_pool: asyncpg.Pool, language: str, text: str, reply: str
) -> None:
    await _two_gifts(pg_pool, language)
    assert await Phone(client, SENDER).send(text, "c-1") == reply
    assert len(await _pending_to(pg_pool)) == 2
    assert await available(pg_pool, SENDER) == 360


async def test_a_redelivered_cancel_takes_back_one_gift_even_without_the_kept_reply(
    client: TestClient, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    await _two_gifts(pg_pool)
    phone = Phone(client, SENDER)
    first = await phone.send("ОТМЕНА", "same-id")
    assert first.startswith("Отменён: 40 баллов")
    assert await phone.send("ОТМЕНА", "same-id") == first
    # Redis lost the kept reply: the ledger's idempotency answers the first result,
    # it does not take back the next newest gift.
    for key in await redis_client.keys(SMS_REPLY_PREFIX + "*"):
        await redis_client.delete(key)
    assert await phone.send("ОТМЕНА", "same-id") == first
    assert await _pending_to(pg_pool) == [RECIPIENT]
    assert await available(pg_pool, SENDER) == 400
    # A new message is a new request: it takes back the next one.
    assert (await phone.send("ОТМЕНА", "other-id")).startswith("Отменён: 100 баллов")
    assert await _pending_to(pg_pool) == []
    assert await available(pg_pool, SENDER) == 500
    assert await ledger.check(pg_pool) == []


async def test_both_sides_are_told_once(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, _ = gateway
    await _two_gifts(pg_pool)
    reply = await Phone(client, SENDER).send("ОТМЕНА", "c-1")
    await notifier.run_once()
    # The recipient (English) learns who took it back; the sender (Russian) has
    # the reply, and no second SMS saying the same.
    assert "The gift of 40 points from +7 916 123-45-67 was cancelled by the sender." in (
        fake.texts_to(THIRD)
    )
    assert "Отменён: 40 баллов на +7 903 111-22-33" in reply
    assert fake.texts_to(SENDER) == []


async def test_help_names_the_cancel_command(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    await member(pg_pool, SENDER)
    assert "ОТМЕНА" in await Phone(client, SENDER).send("ПОМОЩЬ", "h-1")
    await member(pg_pool, RECIPIENT, language="en")
    assert "CANCEL - take back your gift" in await Phone(client, RECIPIENT).send("help", "h-2")
