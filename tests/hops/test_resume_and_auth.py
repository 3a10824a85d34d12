"""Resuming a dropped USSD session, and who may call the gateway and operator endpoints."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hops_harness import (
    AfricasTalkingPhone,
    NativePhone,
    TwilioPhone,
    assert_sound,
    available,
    count_rows,
    local_form,
    member,
    new_msisdn,
)

from ussd_service.app import create_app
from ussd_service.config import Settings

RESUME = "Продолжить"  # resume_offer in menu_definitions.yaml


async def _to_gift_confirm(phone: NativePhone, recipient: str, points: int = 100) -> None:
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    reply = await phone.send(str(points))
    assert f"Подарить {points}" in reply.text


async def test_resume_continues_at_the_same_screen(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = NativePhone(client, sender)
    await phone.begin()
    await phone.send("4")
    reply = await phone.send(local_form(recipient))
    assert "Сколько баллов" in reply.text
    dropped = await phone.drop()
    assert dropped.final

    again = NativePhone(client, sender)
    reply = await again.begin()
    assert not reply.final
    assert reply.text.startswith(RESUME)
    reply = await again.send("1")
    assert not reply.final
    assert "Сколько баллов" in reply.text
    reply = await again.send("100")
    assert "Подарить 100" in reply.text
    reply = await again.send("1")
    assert "Подарок отправлен" in reply.text
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    assert await available(pg_pool, sender) == 900
    # The resume point is used once: the next dial starts at the main menu.
    reply = await NativePhone(client, sender).begin()
    assert reply.text.startswith("Бонусы")
    await assert_sound(pg_pool)


async def test_resume_declined_starts_again(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 10)
    phone = NativePhone(client, caller)
    await phone.begin()
    await phone.send("4")  # an input: worth resuming (a menu that only shows is not)
    await phone.drop()
    again = NativePhone(client, caller)
    assert (await again.begin()).text.startswith(RESUME)
    reply = await again.send("2")
    assert reply.text.startswith("Бонусы")
    reply = await again.send("1")
    assert "Баланс: 10" in reply.text


async def test_no_resume_after_a_finished_session_or_for_another_number(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    sender, recipient, other = new_msisdn(), new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    await member(pg_pool, other)
    phone = NativePhone(client, sender)
    await _to_gift_confirm(phone, recipient)
    reply = await phone.send("1")
    assert reply.final
    await phone.drop()  # the gateway closes the session after the final screen
    reply = await NativePhone(client, sender).begin()
    assert reply.text.startswith("Бонусы")

    phone = NativePhone(client, sender)
    await phone.begin()
    await phone.send("3")
    await phone.drop()
    reply = await NativePhone(client, other).begin()
    assert reply.text.startswith("Бонусы")
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    await assert_sound(pg_pool)


async def test_resume_at_the_confirm_screen_then_confirm_gives_one_gift(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = NativePhone(client, sender)
    await _to_gift_confirm(phone, recipient)
    await phone.drop()
    again = NativePhone(client, sender)
    assert (await again.begin()).text.startswith(RESUME)
    reply = await again.send("1")
    assert "Подарить 100" in reply.text
    reply = await again.send("1")
    assert "Подарок отправлен" in reply.text
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    assert await available(pg_pool, sender) == 900
    await assert_sound(pg_pool)


# -- authentication ---------------------------------------------------------------

GATEWAY_SECRET = "gateway-secret-0123456789"
API_TOKEN = "api-token-0123456789abcdef"


@pytest.fixture
async def locked_client(
    settings: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[TestClient]:
    locked = settings.model_copy(update={"gateway_secret": GATEWAY_SECRET, "api_token": API_TOKEN})
    async with TestClient(TestServer(create_app(locked, background=False))) as test_client:
        yield test_client


def _basic(password: str, user: str = "gateway") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("dialect", ["africastalking", "native", "twilio"])
async def test_gateway_secret_is_required_as_header_or_basic_auth(
    locked_client: TestClient, pg_pool: asyncpg.Pool, dialect: str
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 3)
    phones = {
        "africastalking": AfricasTalkingPhone,
        "native": NativePhone,
        "twilio": TwilioPhone,
    }
    phone = phones[dialect](locked_client, caller)

    assert (await phone.begin()).status == 401
    phone.headers = {"X-Gateway-Token": "wrong-secret-0123456789"}
    assert (await phone.begin()).status == 401
    phone.headers = _basic("wrong-secret-0123456789")
    assert (await phone.begin()).status == 401
    phone.headers = {"Authorization": "Basic !!!not-base64"}
    assert (await phone.begin()).status == 401

    phone.headers = {"X-Gateway-Token": GATEWAY_SECRET}
    reply = await phone.begin()
    assert reply.status == 200
    assert "Бонусы" in reply.text
    phone.headers = _basic(GATEWAY_SECRET)
    reply = await phone.send("1")
    assert reply.status == 200
    assert "Баланс: 3" in reply.text

    status = await locked_client.post(
        "/ivr/twilio/status", data={"CallSid": "CAx", "From": caller, "CallStatus": "completed"}
    )
    assert status.status == 401


async def test_operator_api_needs_the_bearer_token(locked_client: TestClient) -> None:
    assert (await locked_client.get("/v1/handoffs")).status == 401
    wrong = {"Authorization": "Bearer nope-nope-nope-nope"}
    assert (await locked_client.get("/v1/handoffs", headers=wrong)).status == 401
    basic = _basic(API_TOKEN)
    assert (await locked_client.get("/v1/handoffs", headers=basic)).status == 401
    gateway = {"X-Gateway-Token": GATEWAY_SECRET}
    assert (await locked_client.get("/v1/handoffs", headers=gateway)).status == 401
    assert (await locked_client.post("/v1/handoffs/1/claim")).status == 401
    assert (await locked_client.post("/v1/handoffs/1/close")).status == 401

    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    resp = await locked_client.get("/v1/handoffs?status=waiting", headers=bearer)
    assert resp.status == 200
    assert (await resp.json()) == {"items": []}
    assert (await locked_client.post("/v1/handoffs/1/claim", headers=bearer)).status == 404
