"""/sms/inbound in Kannel's conventions, over real HTTP: what Kannel cannot be made to send.

The happy paths run through a real Kannel in ``tests/kannel``; here are the
requests a smsbox without ``mo-recode``, a broken or hostile client, or a
future Kannel could send, and the reply headers Kannel depends on.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sms_harness import RECIPIENT, SENDER, available, member, sms_app

import ledger
from ussd_service.channels.dialect import GatewayRequest
from ussd_service.channels.sms import (
    GET_URL_QUERY,
    PATH,
    POST_URL_QUERY,
    KannelGetClient,
    KannelPostClient,
    new_message_id,
)
from ussd_service.config import Settings

# What a stranger (not a member) gets for HELP or anything unknown: how to join.
STRANGER_HELP_RU = "Чтобы вступить в бонусную программу, ответьте ВСТУПИТЬ"


async def deliver(
    client: TestClient, request: GatewayRequest, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    all_headers = {**request.headers, **(headers or {})}
    if request.content_type:
        all_headers["Content-Type"] = request.content_type
    resp = await client.request(
        request.method,
        request.path,
        params=dict(request.query) or None,
        data=request.body or None,
        headers=all_headers,
    )
    return resp.status, await resp.text(), dict(resp.headers)


@pytest.mark.parametrize(
    "make",
    [
        lambda: KannelGetClient(SENDER, "4555"),
        lambda: KannelGetClient(SENDER, "4555", ucs2_raw=True),  # smsbox without mo-recode
        lambda: KannelPostClient(SENDER, "4555"),
    ],
    ids=["get-url", "get-url-utf16", "post-url"],
)
async def test_kannel_requests_gift_and_get_a_reply_kannel_can_send(
    client: TestClient, pg_pool: asyncpg.Pool, make: object
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    gateway = make()  # type: ignore[operator]
    request = gateway.message("ДАР 8 916 765-43-21 100", new_message_id())
    status, body, headers = await deliver(client, request)
    assert status == 200
    assert body.startswith("Подарок 100 баллов отправлен.")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Kannel-Coding"] == "2"
    assert await available(pg_pool, SENDER) == 400
    # Kannel's retry of the same message (same %I): the same answer, no second gift.
    again = await deliver(client, request)
    assert again[:2] == (200, body)
    assert (await ledger.pending_gifts(pg_pool, RECIPIENT)).unwrap().count == 1


async def test_a_gsm7_reply_asks_for_no_ucs2(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    await member(pg_pool, SENDER, points=5, language="en")
    request = KannelGetClient(SENDER, "4555").message("BALANCE", new_message_id())
    status, body, headers = await deliver(client, request)
    assert status == 200
    assert body.startswith("Balance: 5 points.")
    assert "X-Kannel-Coding" not in headers


async def test_post_url_numbers_from_the_query_and_a_utf16_body(client: TestClient) -> None:
    # post-url without send-sender: no X-Kannel-From, the number in the URL's query.
    resp = await client.post(
        "/sms/inbound",
        params={"id": new_message_id(), "from": SENDER},
        data="ПОМОЩЬ".encode("utf-16-be"),
        headers={
            "Content-Type": 'text/plain; charset="UTF-16BE"',
            "X-Kannel-To": "4555",
            "X-Kannel-Coding": "2",
        },
    )
    assert (resp.status, await resp.text()) == (200, STRANGER_HELP_RU)


async def test_get_url_with_every_escape_kannel_has(client: TestClient) -> None:
    # %a joins words with +, %p arrives url-encoded, the id is a UUID.
    path = (
        "/sms/inbound?from=%2B79161234567&to=4555&text=%D0%9F%D0%9E%D0%9C%D0%9E%D0%A9%D0%AC"
        "&id=b08462f3-336c-4019-978b-cded37525bd2&coding=0&charset=UTF-8"
    )
    resp = await client.get(path)
    assert (resp.status, await resp.text()) == (200, STRANGER_HELP_RU)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("to=4555&text=HELP", "missing field from"),
        ("from=hello&to=4555&text=HELP", "from is not a valid phone number"),
        ("from=%2B79161234567&text=HELP", "missing field to"),
        ("from=%2B79161234567&to=4555", "missing field text"),
        (
            "from=%2B79161234567&to=4555&text=%04%14%04&coding=2&charset=UTF-16BE",
            "text is not valid UTF-16BE (set mo-recode = true",
        ),
        ("from=%2B79161234567&to=4555&text=%FF&charset=UTF-8", "text is not valid UTF-8"),
        ("from=%2B79161234567&to=4555&text=x&coding=1", "binary (8-bit) messages"),
        ("from=%2B79161234567&to=4555&text=x&coding=7", "coding must be 0, 1 or 2"),
        ("from=%2B79161234567&to=4555&text=x&charset=KOI8-Z", "unknown charset KOI8-Z"),
        ("from=%2B79161234567&to=4555&text=x&id=a+b", "id contains spaces"),
        ("from=%2B79161234567&to=4555&text=a%00b", "control characters"),
        ("from=%FF&to=4555&text=x", "field from is not valid UTF-8"),
    ],
)
async def test_malformed_get_url_requests_get_a_400_with_a_reason(
    client: TestClient, query: str, reason: str
) -> None:
    resp = await client.get("/sms/inbound?" + query)
    assert resp.status == 400
    text = await resp.text()
    assert reason in text
    assert text.count("\n") == 1


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"X-Kannel-To": "4555"}, b"HELP", "missing X-Kannel-From (send-sender = true)"),
        ({"X-Kannel-From": SENDER}, b"HELP", "missing X-Kannel-To"),
        ({"X-Kannel-From": SENDER, "X-Kannel-To": "4555"}, b"\xff", "text is not valid UTF-8"),
        (
            {"X-Kannel-From": SENDER, "X-Kannel-To": "4555", "X-Kannel-Coding": "1"},
            b"\x00\x01",
            "binary (8-bit) messages",
        ),
    ],
)
async def test_malformed_post_url_requests_get_a_400_with_a_reason(
    client: TestClient, headers: dict[str, str], body: bytes, reason: str
) -> None:
    resp = await client.post(
        "/sms/inbound",
        params={"id": "x1"},
        data=body,
        headers={"Content-Type": "text/plain; charset=UTF-8", **headers},
    )
    assert resp.status == 400
    assert reason in await resp.text()


async def test_other_bodies_are_refused_naming_both_conventions(client: TestClient) -> None:
    resp = await client.post("/sms/inbound", data=b"<x/>", headers={"Content-Type": "text/xml"})
    assert resp.status == 400
    assert "application/x-www-form-urlencoded (a form) or text/plain (Kannel post-url)" in (
        await resp.text()
    )


async def test_kannel_presents_the_secret_from_its_url_as_basic_auth(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    secret = "kannel-secret-0123456789"
    guarded = settings.model_copy(update={"gateway_secret": secret})
    request = KannelGetClient(SENDER, "4555").message("HELP", new_message_id())
    # What Kannel sends for get-url = "http://kannel:SECRET@host/...".
    basic = "Basic " + base64.b64encode(f"kannel:{secret}".encode()).decode()
    async with TestClient(TestServer(sms_app(guarded))) as client:
        assert (await deliver(client, request))[0] == 401
        wrong = "Basic " + base64.b64encode(b"kannel:nope").decode()
        assert (await deliver(client, request, {"Authorization": wrong}))[0] == 401
        status, body, _ = await deliver(client, request, {"Authorization": basic})
        assert (status, body) == (200, STRANGER_HELP_RU)


def test_the_readme_configures_kannel_with_the_urls_the_dialect_reads() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## SMS through Kannel") :]
    get_url = re.search(r'^get-url = "http://kannel:[^@]+@[^/]+(/\S+)"$', section, re.M)
    post_url = re.search(r'^post-url = "http://kannel:[^@]+@[^/]+(/\S+)"$', section, re.M)
    assert get_url is not None
    assert post_url is not None
    assert get_url.group(1) == f"{PATH}?{GET_URL_QUERY}"
    assert post_url.group(1) == f"{PATH}?{POST_URL_QUERY}"
