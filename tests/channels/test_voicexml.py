# The menu's Russian screens are what these tests check.
# ruff: noqa: RUF001
"""VoiceXML (``/ivr/voicexml``): documents, conversations, retries, hang-ups, bad requests."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode

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

from menus.screen import Handoff, IvrHints, Prompt, Screen
from menus.text import format_phone
from ussd_service.channels import dialect
from ussd_service.channels.dialect import FORM, GatewayRequest
from ussd_service.channels.voicexml import (
    CONTENT_TYPE,
    HANGUP_PATH,
    PATH,
    VXML_NS,
    Call,
    Session,
    read_vxml,
    vxml,
)

NS = {"v": VXML_NS}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
OPERATOR = "tel:+78005550890"
MAIN_PROMPTS = ("Бонусы", "Баланс — нажмите 1.", "История — нажмите 2.")


def voice_phone(client: TestClient, msisdn: str, call_id: str = "vx-1") -> Phone:
    return Phone(client, Session(msisdn, call_id, "0890"))


def document(raw: Raw | None) -> ET.Element:
    assert raw is not None
    assert raw.status == 200, raw
    assert raw.content_type == CONTENT_TYPE
    assert raw.body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(raw.body)


def submit(root: ET.Element, where: str) -> dict[str, str]:
    found = root.find(f"{where}/v:submit", NS)
    assert found is not None, where
    return dict(found.attrib)


def grammar_keys(root: ET.Element) -> tuple[str, list[str]]:
    """The grammar's repeat and its keys."""
    item = root.find(".//v:grammar/v:rule/v:item", NS)
    assert item is not None
    return item.get("repeat", ""), [k.text or "" for k in item.iterfind("v:one-of/v:item", NS)]


def properties(root: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in root.iterfind(".//v:property", NS)}


async def post_form(client: TestClient, url: str, form: dict[str, str]) -> Raw:
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&")) if query else {}
    request = GatewayRequest("POST", path, urlencode(form).encode(), FORM, query=params)
    return await exchange(client, request)


async def test_first_fetch_by_get_then_the_balance(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 1234)
    phone = voice_phone(client, caller)

    reading = await phone.begin()
    assert phone.sent[0].method == "GET"
    root = document(phone.last)
    assert root.tag == f"{{{VXML_NS}}}vxml"
    assert (root.get("version"), root.get(XML_LANG)) == ("2.1", "ru-RU")
    variables = {v.get("name"): json.loads(v.get("expr", "")) for v in root.iterfind("v:var", NS)}
    assert variables == {"session": "vx-1", "caller": caller, "called": "0890"}
    catch = root.find("v:catch", NS)
    assert catch is not None
    assert catch.get("event") == "connection.disconnect"
    assert submit(root, "v:catch")["next"] == HANGUP_PATH
    assert properties(root) == {"inputmodes": "dtmf", "timeout": "6s", "termchar": ""}
    assert grammar_keys(root) == ("1", [*"0123456789", "*", "#"])
    filled = submit(root, ".//v:field/v:filled")
    assert filled["next"].startswith(f"{PATH}?seq=")
    assert filled["namelist"] == "session caller called digits"
    assert filled["method"] == "post"
    assert submit(root, ".//v:field/v:noinput")["next"] == filled["next"] + "&timeout=1"
    assert reading.prompts[:3] == MAIN_PROMPTS
    assert (reading.final, reading.num_digits, reading.finish_on_key, reading.timeout) == (
        False,
        1,
        "",
        6,
    )

    reading = await phone.answer("1")
    assert reading.text.startswith("Баланс: 1 234 балла\nСгорят 1 234 балла")
    assert reading.prompts[-2:] == (
        "Главное меню — нажмите 1.",
        "Повторить — звёздочка. Назад — решётка. Оператор — ноль.",
    )
    reading = await phone.answer("1")
    assert reading.prompts[:3] == MAIN_PROMPTS
    assert await available(pg_pool, caller) == 1234


async def test_gift_with_confirmation(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = voice_phone(client, sender)
    await phone.begin()

    reading = await phone.answer("4")
    assert reading.prompts == ("Введите номер получателя.", "Затем нажмите решётку.")
    root = document(phone.last)
    assert properties(root)["termchar"] == "#"
    repeat, keys = grammar_keys(root)
    assert (repeat, "#" in keys, "*" in keys) == ("1-32", False, True)
    assert (reading.num_digits, reading.finish_on_key) == (None, "#")

    await phone.answer(local_form(recipient))
    reading = await phone.answer("100")
    assert reading.prompts == (
        f"Подарить 100 баллов на номер {format_phone(recipient, voice=True)}?",
        "Да — нажмите 1.",
        "Нет — нажмите 2.",
    )
    reading = await phone.answer("1")
    assert reading.final
    assert reading.text.startswith("Подарок отправлен. Его можно принять до")
    root = document(phone.last)
    assert root.find(".//v:field", NS) is None
    assert root.find("v:form/v:block/v:disconnect", NS) is not None

    assert await available(pg_pool, sender) == 900
    assert await pending_points(pg_pool, recipient) == [100]
    await assert_sound(pg_pool)


async def test_zero_transfers_to_the_operator_then_the_hangup_ends_the_call(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 700)
    phone = voice_phone(client, caller)
    await phone.begin()
    reading = await phone.answer("0")
    assert reading.final
    assert reading.prompts == ("Соединяем с оператором. Оставайтесь на линии.",)
    assert reading.transfer == OPERATOR
    transfer = document(phone.last).find("v:form/v:transfer", NS)
    assert transfer is not None
    assert transfer.get("type") == "blind"

    items = await waiting_handoffs(client)
    assert [(i["msisdn"], i["channel"], i["reason"]) for i in items] == [
        (caller, "ivr", "caller_request")
    ]
    assert items[0]["breadcrumb"] == ["main:0"]

    # The blind transfer disconnects the browser: its catch reports the end.
    reading = await phone.end()
    assert phone.sent[-1].path == HANGUP_PATH
    assert document(phone.last).find("v:form/v:block/v:exit", NS) is not None
    assert reading.final
    assert len(await waiting_handoffs(client)) == 1  # the operator still takes the call


async def test_silence_three_times_reaches_the_operator(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = voice_phone(client, caller)
    await phone.begin()
    for _ in range(2):
        reading = await phone.silence()
        assert phone.sent[-1].query["timeout"] == "1"
        assert reading.prompts[:3] == MAIN_PROMPTS
    reading = await phone.silence()
    assert reading.transfer == OPERATOR
    items = await waiting_handoffs(client)
    assert [i["reason"] for i in items] == ["max_timeouts"]
    assert items[0]["breadcrumb"] == ["main:(timeout)"] * 3


async def test_keys_the_grammar_cannot_match_are_a_wrong_answer(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = voice_phone(client, caller)
    await phone.begin()
    nomatch = submit(document(phone.last), ".//v:field/v:nomatch")
    assert nomatch["namelist"] == "session caller called"
    raw = await post_form(
        client, nomatch["next"], {"session": "vx-1", "caller": caller, "called": "0890"}
    )
    reading = read_vxml(raw.status, raw.body)
    assert reading.prompts[0] == "Ошибка ввода."
    assert reading.prompts[1:4] == MAIN_PROMPTS


async def test_a_retried_fetch_is_answered_once(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 50)
    phone = voice_phone(client, caller)
    await phone.begin()
    request = phone.session.answer("4")
    first, retry = await exchange(client, request), await exchange(client, request)
    assert read_vxml(first.status, first.body).prompts == (
        "Введите номер получателя.",
        "Затем нажмите решётку.",
    )
    # Taken twice, the "4" would be a wrong number on the recipient screen.
    assert retry.body == first.body
    assert await duplicate_hops(client, "ivr") == 1
    phone.session.read(retry.status, retry.body)
    # The recipient screen took the number (a stranger: asked for another one).
    reading = await phone.answer("89160000000")
    assert reading.prompts[0].startswith("Этот номер не в программе бонусов.")


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
async def test_a_retried_confirmation_gives_one_gift(
    client: TestClient, pg_pool: asyncpg.Pool, mode: str
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = voice_phone(client, sender)
    await phone.begin()
    await phone.answer("4", local_form(recipient), "100")

    request = phone.session.answer("1")
    if mode == "sequential":
        replies = [await exchange(client, request) for _ in range(3)]
    else:
        replies = list(await asyncio.gather(*(exchange(client, request) for _ in range(3))))
    assert {r.body for r in replies} == {replies[0].body}
    assert "Подарок отправлен" in read_vxml(200, replies[0].body).text
    assert await duplicate_hops(client, "ivr") == 2
    assert await available(pg_pool, sender) == 900
    assert await pending_points(pg_pool, recipient) == [100]
    await assert_sound(pg_pool)


async def test_a_hangup_mid_call_ends_the_session(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    phone = voice_phone(client, caller)
    await phone.begin()
    await phone.answer("1")
    stale = phone.session.answer("1")
    reading = await phone.end()
    assert reading.final
    assert reading.text == ""

    raw = await exchange(client, stale)
    reading = read_vxml(raw.status, raw.body)
    assert reading.final
    assert reading.prompts == ("Сессия истекла. Позвоните ещё раз.",)
    assert document(raw).find("v:form/v:block/v:disconnect", NS) is not None


async def test_odd_ids_are_escaped_and_a_tel_uri_caller_is_read(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    call_id = "a<b>&\"'c\\d é"
    phone = Phone(client, Session(f"tel:{caller}", call_id, "0890"))
    await phone.begin()
    variable = document(phone.last).find("v:var", NS)
    assert variable is not None
    assert json.loads(variable.get("expr", "")) == call_id
    reading = await phone.answer("1")
    assert reading.text.startswith("Баланс: 5 баллов")
    posted = parse_qs(phone.sent[-1].body.decode())
    assert (posted["session"], posted["caller"]) == ([call_id], [caller])


async def test_the_english_menu_is_spoken_in_english(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    phone = voice_phone(client, caller)
    await phone.begin()
    await phone.answer("6")
    reading = await phone.answer("2")
    assert document(phone.last).get(XML_LANG) == "en-US"
    assert reading.prompts[0] == "Bonus points"


def _form(**change: str | None) -> dict[str, str]:
    form = {"session": "vx-bad", "caller": "+79161234567", "called": "0890", "digits": "1"}
    return {k: v for k, v in (form | change).items() if v is not None}


@pytest.mark.parametrize(
    ("method", "url", "form", "reason"),
    [
        ("POST", f"{PATH}?seq=1", _form(session=None), "missing field session"),
        ("POST", f"{PATH}?seq=1", _form(session="a\x01"), "control characters"),
        ("POST", f"{PATH}?seq=1", _form(caller=None), "missing field caller"),
        ("POST", f"{PATH}?seq=1", _form(caller="12"), "caller is not a valid phone number"),
        ("POST", f"{PATH}?seq=1", _form(digits="12a"), "field digits must hold DTMF keys only"),
        ("POST", f"{PATH}?seq=1", _form(digits="1" * 33), "field digits must hold DTMF keys"),
        ("POST", f"{PATH}?seq=x", _form(), "query parameter seq must be a small whole number"),
        ("POST", f"{PATH}?seq=1&timeout=2", _form(), "query parameter timeout must be 1"),
        ("GET", PATH, _form(caller=None), "missing field caller"),
        ("GET", PATH, _form(caller="+7"), "caller is not a valid phone number"),
        ("POST", HANGUP_PATH, _form(session=None), "missing field session"),
        ("POST", HANGUP_PATH, _form(caller=""), "field caller is empty"),
    ],
)
async def test_malformed_requests_get_a_one_line_400(
    client: TestClient, method: str, url: str, form: dict[str, str], reason: str
) -> None:
    if method == "GET":
        resp = await client.get(url, params=form)
        raw = Raw(resp.status, resp.content_type, await resp.text())
    else:
        raw = await post_form(client, url, form)
    assert raw.status == 400
    assert raw.content_type == "text/plain"
    assert raw.body.count("\n") == 1
    assert reason in raw.body


async def test_a_json_body_is_refused(client: TestClient) -> None:
    resp = await client.post(f"{PATH}?seq=1", json=_form())
    assert resp.status == 400
    assert await resp.text() == "expected Content-Type application/x-www-form-urlencoded\n"


def _hints() -> IvrHints:
    return IvrHints(None, "#", 5, "", "ru-RU")


def test_a_sip_transfer_carries_the_handoff_id_and_audio_is_played() -> None:
    screen = Screen(
        node="operator",
        text="Ждите",
        final=True,
        handoff=Handoff("caller_request", "sip:desk@pbx.example"),
        prompts=(Prompt("Ждите", audio="https://media.example/hold.wav"), Prompt("Ждите")),
        ivr=_hints(),
    )
    body = vxml(screen, seq=4, call=Call("c1", "+79161234567", "0890"), handoff_id=17)
    reading = read_vxml(200, body)
    assert reading.transfer == "sip:desk@pbx.example?X-Handoff-Id=17"
    assert reading.audio == ("https://media.example/hold.wav",)
    assert reading.prompts == ("Ждите",)
    assert reading.final
    clip = ET.fromstring(body).find(".//v:audio", NS)
    assert clip is not None
    assert clip.text == "Ждите"  # spoken when the file cannot be fetched


def test_the_client_half_posts_what_the_document_declares() -> None:
    open_session = dialect("voicexml").session
    assert open_session is not None
    phone = open_session("+79161234567", "call-7", "0890")
    begin = phone.begin()
    assert (begin.method, begin.path, dict(begin.query)) == (
        "GET",
        PATH,
        {"session": "call-7", "caller": "+79161234567", "called": "0890"},
    )
    screen = Screen(node="main", text="Меню", final=False, prompts=(Prompt("Меню"),), ivr=_hints())
    body = vxml(screen, seq=9, call=Call("call-7", "+79161234567", "0890"))
    reading = phone.read(200, body)
    assert (reading.text, reading.final, reading.timeout, reading.finish_on_key) == (
        "Меню",
        False,
        5,
        "#",
    )
    answer = phone.answer("12")
    assert (answer.method, answer.path, dict(answer.query)) == ("POST", PATH, {"seq": "9"})
    assert answer.content_type == FORM
    assert answer.body == b"session=call-7&caller=%2B79161234567&called=0890&digits=12"
    silence = phone.silence()
    assert silence is not None
    assert dict(silence.query) == {"seq": "9", "timeout": "1"}
    assert b"digits" not in silence.body
    end = phone.end()
    assert (end.path, end.body) == (
        HANGUP_PATH,
        b"session=call-7&caller=%2B79161234567&called=0890",
    )
    assert phone.read(400, "missing field caller\n").final
    assert phone.silence() is None  # no document, nothing to time out
