"""SMS to 4555 over real HTTP: every command, number format and script; replies and ledger."""

# ruff: noqa: RUF001 - Cyrillic command words and replies are what these tests check

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sms_harness import RECIPIENT, SENDER, THIRD, Phone, available, member, post_sms, sms_app

import ledger
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus
from ussd_service.openapi import openapi_document
from ussd_service.redis_keys import SMS_REPLY_PREFIX as REPLY_KEY_PREFIX
from ussd_service.sms_desk import (
    Command,
    CommandKind,
    missing_replies,
    parse_command,
)

HELP_RU = "ДАР номер баллы - подарить. ДАР - принять. НЕТ - отказ. ОТМЕНА. БАЛАНС"
HELP_EN = (
    "GIFT number points - give. GIFT - accept. NO - decline. CANCEL - take back your gift. BALANCE"
)
HELP_JOIN_RU = "Чтобы вступить в бонусную программу, ответьте ВСТУПИТЬ"

# -- parsing (no servers) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DAR +7 916 765-43-21 100", Command(CommandKind.GIFT, "+7 916 765-43-21", 100)),
        ("  дар   8 916 765 43 21   100  ", Command(CommandKind.GIFT, "8 916 765 43 21", 100)),
        ("Gift 79167654321 50", Command(CommandKind.GIFT, "79167654321", 50)),
        ("ПОДАРОК +79167654321 10.", Command(CommandKind.GIFT, "+79167654321", 10)),
        ("ДAР 79167654321 10", Command(CommandKind.GIFT, "79167654321", 10)),  # Latin A
        ("dar\n79167654321\n10", Command(CommandKind.GIFT, "79167654321", 10)),
        ("DAR", Command(CommandKind.ACCEPT)),
        ("дар!", Command(CommandKind.ACCEPT)),
        ("Подарок", Command(CommandKind.ACCEPT)),
        ("gift", Command(CommandKind.ACCEPT)),
        ("NET", Command(CommandKind.DECLINE)),
        ("no", Command(CommandKind.DECLINE)),
        ("Нет", Command(CommandKind.DECLINE)),
        ("HET", Command(CommandKind.DECLINE)),
        ("BALANCE", Command(CommandKind.BALANCE)),
        ("баланс?", Command(CommandKind.BALANCE)),
        ("HELP", Command(CommandKind.HELP)),
        ("помощь", Command(CommandKind.HELP)),
        ("?", Command(CommandKind.HELP)),
        ("", Command(CommandKind.HELP)),
        ("hello there", Command(CommandKind.HELP)),
        ("DAR 79167654321", Command(CommandKind.HELP)),  # no points
        ("DAR 100", Command(CommandKind.HELP)),  # no number
        ("DAR 79167654321 сто", Command(CommandKind.HELP)),
        ("DAR 79167654321 -5", Command(CommandKind.HELP)),
        ("DAR 79167654321 1234567890", Command(CommandKind.HELP)),  # absurd points
        ("НЕТ спасибо", Command(CommandKind.HELP)),  # never decline on a guess
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


# -- gift, in every number format and both scripts --------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("DAR +7 916 765-43-21 100", "ru"),
        ("дар 8 916 765 43 21 100", "ru"),
        ("ДАР 79167654321 100", "ru"),
        ("Подарок +7 (916) 765-43-21 100", "ru"),
        ("GIFT +7 916 765-43-21 100", "en"),
        ("gift 8 916 765 43 21 100", "en"),
        ("Gift   79167654321    100", "en"),
        ("подарок 89167654321 100", "en"),
    ],
)
async def test_gift_by_sms_in_every_format(
    client: TestClient, pg_pool: asyncpg.Pool, text: str, language: str
) -> None:
    await member(pg_pool, SENDER, points=500, language=language)
    await member(pg_pool, RECIPIENT)
    reply = await Phone(client, SENDER).send(text, "m-1")
    if language == "ru":
        assert reply.startswith("Подарок 100 баллов отправлен. Его можно принять до ")
    else:
        assert reply.startswith("Gift of 100 points sent. Awaiting reply until ")
    pending = (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap()
    assert [(g.sender, g.points) for g in pending.items] == [(SENDER, 100)]
    assert await available(pg_pool, SENDER) == 400
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize(
    ("setup", "text", "reply_ru"),
    [
        ("both", "DAR 79161234567 100", "Нельзя дарить себе."),
        ("both", "DAR 79167654321 5000", "Недостаточно баллов: у вас 500 баллов."),
        ("both", "DAR 79167654321 5", "Подарок — от 10 до 10 000 баллов."),
        ("both", "DAR 79167654321 20000", "Подарок — от 10 до 10 000 баллов."),
        ("both", "DAR 12 34 100", "Неверный номер получателя."),
        ("sender", "DAR 79167654321 100", "Получатель не в программе."),
        ("none", "DAR 79167654321 100", "Вы не в программе. Наберите *111*455#"),
    ],
)
async def test_gift_refusals_are_explained(
    client: TestClient, pg_pool: asyncpg.Pool, setup: str, text: str, reply_ru: str
) -> None:
    if setup in ("both", "sender"):
        await member(pg_pool, SENDER, points=500)
    if setup == "both":
        await member(pg_pool, RECIPIENT)
    assert await Phone(client, SENDER).send(text, "m-1") == reply_ru
    assert (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap().count == 0
    assert await ledger.check(pg_pool) == []


# -- accept, decline -------------------------------------------------------------------


async def test_accept_takes_the_oldest_and_says_how_many_remain(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, THIRD, points=500)
    await member(pg_pool, RECIPIENT, language="en")
    assert (await Phone(client, SENDER).send("DAR 79167654321 100", "a")).startswith("Подарок")
    assert (await Phone(client, THIRD).send("DAR 79167654321 30", "b")).startswith("Подарок")
    phone = Phone(client, RECIPIENT)
    assert await phone.send("GIFT", "c") == "Accepted 100 points. Gifts still waiting: 1."
    assert await phone.send("дар", "d") == "Accepted 30 points. Balance: 130 points."
    assert await phone.send("Gift", "e") == "No gifts are waiting for you."
    assert await available(pg_pool, RECIPIENT) == 130
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize("word", ["NET", "no", "нет", "Нет", "HET"])
async def test_decline_returns_the_oldest_gift(
    client: TestClient, pg_pool: asyncpg.Pool, word: str
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "g1")
    await Phone(client, SENDER).send("DAR 79167654321 50", "g2")
    phone = Phone(client, RECIPIENT)
    assert await phone.send(word, "n1") == "Подарок отклонён. Ещё подарков: 1."
    assert await phone.send(word, "n2") == "Подарок отклонён."
    assert await phone.send(word, "n3") == "Подарков для вас нет."
    assert await available(pg_pool, SENDER) == 500
    assert await available(pg_pool, RECIPIENT) == 0
    assert await ledger.check(pg_pool) == []


# -- balance, help ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "language", "reply"),
    [
        ("БАЛАНС", "ru", "Баланс: 250 баллов."),
        ("balance", "ru", "Баланс: 250 баллов."),
        ("Balance", "en", "Balance: 250 points."),
        ("баланс", "en", "Balance: 250 points."),
    ],
)
async def test_balance_in_the_subscribers_language(
    client: TestClient, pg_pool: asyncpg.Pool, word: str, language: str, reply: str
) -> None:
    await member(pg_pool, SENDER, points=250, language=language)
    assert (await Phone(client, SENDER).send(word)).startswith(reply)


async def test_balance_of_a_stranger_says_how_to_join(client: TestClient) -> None:
    assert await Phone(client, SENDER).send("BALANCE") == "Вы не в программе. Наберите *111*455#"


@pytest.mark.parametrize("text", ["HELP", "помощь", "?", "", "   ", "привет", "DAR 100", "НЕТ же"])
async def test_anything_else_gets_help_never_silence(
    client: TestClient, pg_pool: asyncpg.Pool, text: str
) -> None:
    # A stranger is told how to join; a member what they can do.
    assert await Phone(client, SENDER).send(text) == HELP_JOIN_RU
    await member(pg_pool, RECIPIENT, language="en")
    assert await Phone(client, RECIPIENT).send(text) == HELP_EN


# -- exactly once per gateway message id ---------------------------------------------------


async def test_same_id_five_times_concurrently_one_gift_five_identical_replies(
    client: TestClient, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    answers = await asyncio.gather(
        *(post_sms(client, SENDER, "DAR 8 916 765 43 21 100", "dup-1") for _ in range(5))
    )
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert answers[0][1].startswith("Подарок 100 баллов отправлен.")
    assert (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap().count == 1
    assert await available(pg_pool, SENDER) == 400
    # A later redelivery: the same reply, still one gift; the reply is kept with a TTL.
    assert await Phone(client, SENDER).send("DAR 8 916 765 43 21 100", "dup-1") == answers[0][1]
    keys = await redis_client.keys(REPLY_KEY_PREFIX + "*")
    assert len(keys) == 1
    assert 0 < await redis_client.ttl(keys[0]) <= 24 * 3600
    # Another message id is another gift.
    await Phone(client, SENDER).send("DAR 8 916 765 43 21 100", "dup-2")
    assert (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap().count == 2
    assert await ledger.check(pg_pool) == []


async def test_same_id_accept_five_times_concurrently_accepts_once(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "g1")
    await Phone(client, SENDER).send("DAR 79167654321 60", "g2")
    answers = await asyncio.gather(*(post_sms(client, RECIPIENT, "ДАР", "acc-1") for _ in range(5)))
    assert {body for _, body in answers} == {"Принято: 100 баллов. Ещё подарков: 1."}
    assert await available(pg_pool, RECIPIENT) == 100
    assert await ledger.check(pg_pool) == []


async def test_balance_redelivered_gets_the_first_reply(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=250)
    phone = Phone(client, SENDER)
    first = await phone.send("БАЛАНС", "b-1")
    await ledger.accrue(pg_pool, SENDER, 50, key="more")
    assert await phone.send("БАЛАНС", "b-1") == first
    assert (await phone.send("БАЛАНС", "b-2")).startswith("Баланс: 300 баллов.")


async def test_without_an_id_each_sms_is_a_new_request(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100")
    await Phone(client, SENDER).send("DAR 79167654321 100")
    assert (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap().count == 2


# -- gift by SMS, accept by SMS, end to end --------------------------------------------------


async def test_gift_then_accept_by_sms_end_to_end(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=1000)
    await member(pg_pool, RECIPIENT, language="en")
    reply = await Phone(client, SENDER).send("ПОДАРОК +7 916 765-43-21 250", "e2e-1")
    assert reply.startswith("Подарок 250 баллов отправлен.")
    assert await Phone(client, RECIPIENT).send("gift", "e2e-2") == (
        "Accepted 250 points. Balance: 250 points."
    )
    balance = await Phone(client, SENDER).send("баланс", "e2e-3")
    assert balance.startswith("Баланс: 750 баллов.")
    assert await available(pg_pool, RECIPIENT) == 250
    events = [(m.event, m.msisdn) for m in await ledger.list_outbox(pg_pool)]
    assert events == [("gift_received", RECIPIENT), ("gift_accepted", SENDER)]
    assert await ledger.check(pg_pool) == []


# -- the edge: outages, malformed requests, authentication ---------------------------------------


async def test_ledger_outage_answers_unavailable_not_5xx(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    nowhere = f"postgresql://postgres@/nowhere?host={tmp_path}"
    settings = settings.model_copy(update={"database_url": nowhere})
    async with TestClient(TestServer(sms_app(settings))) as client:
        for n, text in enumerate(["DAR 79167654321 100", "DAR", "NET", "BALANCE"]):
            status, body = await post_sms(client, SENDER, text, f"out-{n}")
            assert (status, body) == (200, "Сервис недоступен, попробуйте позже.")
        assert await post_sms(client, SENDER, "HELP", "out-help") == (200, HELP_RU)
    # Nothing was kept: once the ledger is back, a redelivery is really answered.
    assert await redis_client.keys(REPLY_KEY_PREFIX + "*") == []


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"to": "4555", "text": "DAR"}, "missing field from"),
        ({"from": "hello", "to": "4555", "text": "DAR"}, "from is not a valid phone number"),
        ({"from": SENDER, "text": "DAR"}, "missing field to"),
        ({"from": SENDER, "to": "4555"}, "missing field text"),
        ({"from": SENDER, "to": "4555", "text": "x" * 1601}, "longer than 1600"),
        ({"from": SENDER, "to": "4555", "text": "a\x00b"}, "control characters"),
        ({"from": SENDER, "to": "4555", "text": "DAR", "id": "x" * 129}, "longer than 128"),
        ({"from": SENDER, "to": "4555", "text": "DAR", "id": "a b"}, "id contains spaces"),
    ],
)
async def test_malformed_requests_get_a_400_with_a_reason(
    client: TestClient, form: dict[str, str], reason: str
) -> None:
    resp = await client.post("/sms/inbound", data=form)
    assert resp.status == 400
    assert reason in await resp.text()


async def test_json_body_is_refused(client: TestClient) -> None:
    resp = await client.post("/sms/inbound", json={"from": SENDER, "to": "4555", "text": "DAR"})
    assert resp.status == 400


async def test_gateway_secret_is_required_when_configured(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    secret = "s" * 20
    guarded = settings.model_copy(update={"gateway_secret": secret})
    async with TestClient(TestServer(sms_app(guarded))) as client:
        status, _ = await post_sms(client, SENDER, "HELP")
        assert status == 401
        status, body = await post_sms(client, SENDER, "HELP", headers={"X-Gateway-Token": secret})
        assert (status, body) == (200, HELP_JOIN_RU)


def test_the_menu_file_has_every_reply_the_sms_desk_chooses(settings: Settings) -> None:
    menu = load_menus(settings.menu_file).current
    assert missing_replies(menu) == []


async def test_openapi_paths_describe_exactly_the_added_routes(client: TestClient) -> None:
    paths = openapi_document(client.app)["paths"]
    wanted = {
        ("/sms/inbound", "get"),
        ("/sms/inbound", "post"),
        ("/sms/dlr", "get"),
        ("/sms/dlr", "post"),
        ("/v1/outbox", "get"),
    }
    added = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical in {p for p, _ in wanted}
    }
    documented = {(path, method) for path, _ in wanted for method in paths.get(path, {})}
    assert added == documented == wanted
