# The menu's Russian screens are what these tests check.
# ruff: noqa: RUF001
"""Hubtel USSD (``POST /ussd/hubtel``): conversations, retries, endings, malformed bodies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from channels_harness import (
    Phone,
    Raw,
    assert_sound,
    available,
    duplicate_hops,
    exchange,
    local_form,
    member,
    new_msisdn,
    pending_points,
    waiting_handoffs,
)

import ledger
from ussd_service.channels import dialect
from ussd_service.channels.dialect import GatewayRequest
from ussd_service.channels.hubtel import PATH, Session

CODE = "*111*455#"
MAIN_PAGE_1 = "Бонусы\n1. Баланс\n2. История\n3. Потратить баллы\n4. Подарить баллы\n99. Ещё"


def hubtel_phone(client: TestClient, msisdn: str, session_id: str = "hub-1") -> Phone:
    return Phone(client, Session(msisdn, session_id, CODE))


async def post(client: TestClient, body: Any, content_type: str = "application/json") -> Raw:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await exchange(client, GatewayRequest("POST", PATH, data, content_type))


def reply_json(raw: Raw) -> dict[str, Any]:
    assert raw.status == 200, raw
    assert raw.content_type == "application/json"
    reply: dict[str, Any] = json.loads(raw.body)
    return reply


async def test_balance_walk_speaks_hubtel_json(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 1234)
    phone = hubtel_phone(client, caller)

    reading = await phone.begin()
    assert phone.last is not None
    first = reply_json(phone.last)
    assert first["Type"] == "Response"
    assert first["Message"] == MAIN_PAGE_1
    assert first["ClientState"].isdigit()
    assert set(first) == {"Type", "Message", "ClientState"}
    assert "Бонусы" in phone.last.body  # UTF-8 on the wire, not \u escapes
    assert not reading.final

    reading = await phone.answer("1")
    assert reading.text.startswith("Баланс: 1 234 балла\nСгорят 1 234 балла")
    assert not reading.final
    reading = await phone.answer("1")  # "1" again, on another screen: a new hop, not a retry
    assert reading.text.startswith("Бонусы\n1. Баланс")

    assert await available(pg_pool, caller) == 1234
    await assert_sound(pg_pool)


async def test_ghana_number_without_plus_joins_the_programme(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    phone = hubtel_phone(client, "+233244567890")
    request = phone.session.begin()
    assert json.loads(request.body)["Mobile"] == "233244567890"
    reading = await phone.send(request)
    assert reading.text.startswith("Вы ещё не в программе бонусов.\n1. Вступить")
    await phone.answer("1")
    reading = await phone.answer("1")
    assert reading.text.startswith("Готово! Вы в программе бонусов.")

    summary = await ledger.subscriber_summary(pg_pool, "+233244567890")
    assert summary is not None
    assert summary.status == "active"


async def test_shortcut_in_the_initiation_message(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = Phone(client, Session(caller, "hub-short", "*111*455*1#"))
    reading = await phone.begin()
    assert reading.text.startswith("Баланс: 40 баллов")


async def test_gift_with_confirmation(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = hubtel_phone(client, sender)

    await phone.begin()
    assert (await phone.answer("4")).text.startswith("Номер получателя (8916...):")
    assert (await phone.answer(local_form(recipient))).text.startswith("Сколько баллов")
    reading = await phone.answer("100")
    assert reading.text.startswith("Подарить 100 баллов на +7 916 ")
    assert reading.text.endswith("1. Да\n2. Нет\n0. Назад")
    assert await available(pg_pool, sender) == 1000  # nothing moves before the confirmation

    reading = await phone.answer("1")
    assert reading.final
    assert reading.text.startswith("Подарок отправлен. Его можно принять до")
    assert phone.last is not None
    assert reply_json(phone.last) == {"Type": "Release", "Message": reading.text}

    assert await available(pg_pool, sender) == 900
    assert await pending_points(pg_pool, recipient) == [100]
    await assert_sound(pg_pool)


async def test_operator_handoff_is_a_callback_request(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 700)
    phone = hubtel_phone(client, caller)
    await phone.begin()
    reading = await phone.answer("7")
    assert reading.final
    assert reading.text == "Оператор перезвонит вам в ближайшее время."

    items = await waiting_handoffs(client)
    assert [(i["msisdn"], i["channel"], i["reason"]) for i in items] == [
        (caller, "ussd", "caller_request")
    ]
    assert items[0]["breadcrumb"] == ["main:7"]
    assert items[0]["balance"]["available"] == 700


async def _at_gift_confirm(phone: Phone, recipient: str) -> None:
    await phone.begin()
    await phone.answer("4", local_form(recipient))
    assert "Подарить 100" in (await phone.answer("100")).text


def _without(request: GatewayRequest, *names: str) -> GatewayRequest:
    body = {k: v for k, v in json.loads(request.body).items() if k not in names}
    return GatewayRequest(
        request.method, request.path, json.dumps(body).encode(), "application/json"
    )


def _id_from(request: GatewayRequest, source: str) -> GatewayRequest:
    """``request`` with only ``source`` (Sequence or ClientState) to derive its hop id from."""
    return _without(request, "ClientState" if source == "Sequence" else "Sequence")


@pytest.mark.parametrize(
    ("hop_id_from", "mode"),
    [("Sequence", "sequential"), ("Sequence", "concurrent"), ("ClientState", "sequential")],
)
async def test_a_retried_confirmation_gives_one_gift_and_the_same_reply(
    client: TestClient, pg_pool: asyncpg.Pool, hop_id_from: str, mode: str
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = hubtel_phone(client, sender)
    await _at_gift_confirm(phone, recipient)

    request = _id_from(phone.session.answer("1"), hop_id_from)
    if mode == "sequential":
        replies = [await exchange(client, request) for _ in range(3)]
    else:
        replies = list(await asyncio.gather(*(exchange(client, request) for _ in range(3))))

    assert {r.body for r in replies} == {replies[0].body}
    assert reply_json(replies[0])["Type"] == "Release"
    assert "Подарок отправлен" in reply_json(replies[0])["Message"]
    assert await duplicate_hops(client, "ussd") == 2
    assert await available(pg_pool, sender) == 900
    assert await pending_points(pg_pool, recipient) == [100]
    await assert_sound(pg_pool)


@pytest.mark.parametrize("hop_id_from", ["Sequence", "ClientState"])
async def test_a_retried_menu_choice_is_not_taken_twice(
    client: TestClient, pg_pool: asyncpg.Pool, hop_id_from: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 50)
    phone = hubtel_phone(client, caller)
    await phone.begin()
    request = _id_from(phone.session.answer("4"), hop_id_from)
    first, retry = await exchange(client, request), await exchange(client, request)
    # Taken twice, the "4" would be a wrong number on the recipient screen.
    assert reply_json(first)["Message"] == "Номер получателя (8916...):\n0. Назад"
    assert retry.body == first.body
    assert await duplicate_hops(client, "ussd") == 1
    phone.session.read(retry.status, retry.body)
    # The recipient screen took the number (a stranger: asked for another one).
    assert (await phone.answer("89160000000")).text.startswith("Этот номер не в программе")


async def test_client_state_alone_tells_hops_apart(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    session = Session(caller, "hub-cs", CODE)
    phone = Phone(client, session)
    await phone.send(_without(session.begin(), "Sequence"))
    reading = await phone.send(_without(session.answer("1"), "Sequence"))
    assert reading.text.startswith("Баланс: 5 баллов")
    reading = await phone.send(_without(session.answer("1"), "Sequence"))
    assert reading.text.startswith("Бонусы")


async def test_a_repeated_initiation_replays_the_first_screen(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    request = _without(Session(caller, "hub-rep", CODE).begin(), "Sequence", "ClientState")
    first, second = await exchange(client, request), await exchange(client, request)
    assert first.body == second.body
    assert reply_json(first)["Message"] == MAIN_PAGE_1


@pytest.mark.parametrize("ending", ["Release", "Timeout", "release"])
async def test_release_or_timeout_ends_the_session(
    client: TestClient, pg_pool: asyncpg.Pool, ending: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 50)
    session = Session(caller, "hub-end", CODE)
    phone = Phone(client, session)
    await phone.begin()
    await phone.answer("4")  # an input: worth resuming (the balance screen is not)
    end = session.silence() if ending == "Timeout" else session.end()
    body = json.loads(end.body) | {"Type": ending}
    raw = await post(client, body)
    assert reply_json(raw)["Type"] == "Release"

    reading = await phone.answer("1")
    assert reading.final
    assert reading.text == "Сессия истекла. Наберите *111*455# ещё раз."
    # The subscriber left mid-menu: the next dial offers to continue there.
    again = hubtel_phone(client, caller, "hub-end-2")
    reading = await again.begin()
    assert reading.text.startswith("Продолжить с места, где прервались?")
    reading = await again.answer("1")
    assert reading.text.startswith("Номер получателя")


def _valid() -> dict[str, Any]:
    return {
        "Type": "Response",
        "Message": "1",
        "SessionId": "hub-bad",
        "Mobile": "79161234567",
        "ServiceCode": "111*455",
        "Operator": "mtn",
        "Sequence": 2,
        "ClientState": "3",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Type": None}, "field Type must be one of Initiation, Response, Release, Timeout"),
        ({"Type": "Begin"}, "field Type must be one of"),
        ({"Type": 1}, "field Type must be one of"),
        ({"SessionId": None}, "missing field SessionId"),
        ({"SessionId": 42}, "field SessionId must be a string"),
        ({"SessionId": ""}, "field SessionId is empty"),
        ({"Mobile": None}, "missing field Mobile"),
        ({"Mobile": "12"}, "Mobile is not a valid phone number"),
        ({"Mobile": 79161234567}, "field Mobile must be a string"),
        ({"ServiceCode": None}, "missing field ServiceCode"),
        ({"Message": None}, "missing field Message"),
        ({"Message": ["1"]}, "field Message must be a string"),
        ({"Message": "1" * 183}, "field Message is longer than 182 characters"),
        ({"Message": "1\x00"}, "control characters"),
        ({"Operator": 7}, "field Operator must be a string"),
        ({"Sequence": "two"}, "field Sequence must be a small whole number"),
        ({"Sequence": True}, "field Sequence must be a small whole number"),
        ({"Sequence": -1}, "field Sequence must be a small whole number"),
        ({"ClientState": 3}, "field ClientState must be a string"),
    ],
)
async def test_malformed_fields_get_a_one_line_400(
    client: TestClient, change: dict[str, Any], reason: str
) -> None:
    body = {k: v for k, v in (_valid() | change).items() if v is not None}
    raw = await post(client, body)
    assert raw.status == 400
    assert raw.content_type == "text/plain"
    assert raw.body.count("\n") == 1
    assert reason in raw.body


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "the body is not valid JSON"),
        (b"[1, 2]", "application/json", "the body must be a JSON object"),
        (b"\xff\xfe", "application/json", "the body is not valid UTF-8"),
        (b"Type=Response", "application/x-www-form-urlencoded", "expected Content-Type"),
    ],
)
async def test_malformed_bodies_get_a_one_line_400(
    client: TestClient, body: bytes, content_type: str, reason: str
) -> None:
    raw = await post(client, body, content_type)
    assert raw.status == 400
    assert raw.body.strip().startswith(reason)


def test_the_client_half_builds_what_hubtel_sends() -> None:
    open_session = dialect("hubtel").session
    assert open_session is not None
    phone = open_session("+79161234567", "hub-c", CODE)
    begin = json.loads(phone.begin().body)
    assert begin == {
        "Type": "Initiation",
        "Message": CODE,
        "SessionId": "hub-c",
        "Mobile": "79161234567",
        "ServiceCode": "111*455",
        "Operator": "mtn",
        "Sequence": 1,
        "ClientState": "",
    }
    reading = phone.read(200, '{"Type": "Response", "Message": "Меню", "ClientState": "4"}')
    assert (reading.text, reading.final) == ("Меню", False)
    answer = json.loads(phone.answer("2").body)
    assert (answer["Type"], answer["Message"], answer["Sequence"]) == ("Response", "2", 2)
    assert answer["ClientState"] == "4"  # the previous reply's, echoed
    assert json.loads(phone.end().body)["Type"] == "Release"
    silence = phone.silence()
    assert silence is not None
    assert json.loads(silence.body)["Type"] == "Timeout"
    assert phone.read(200, '{"Type": "Release", "Message": "Пока"}').final
    assert phone.read(400, "missing field Mobile\n").text == "missing field Mobile"
