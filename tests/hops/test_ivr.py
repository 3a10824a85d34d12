"""The 0890 voice line: silence and "0" reach a person, who sees what happened."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import TwilioPhone, assert_sound, available, member, new_msisdn

import ledger

OPERATOR_NUMBER = "+78005550890"
MAX_TIMEOUTS = 3  # channels.ivr.max_timeouts in menu_definitions.yaml


async def _waiting(client: TestClient) -> list[dict[str, object]]:
    resp = await client.get("/v1/handoffs", params={"status": "waiting"})
    assert resp.status == 200
    items: list[dict[str, object]] = (await resp.json())["items"]
    return items


async def test_silence_n_times_dials_the_operator(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = TwilioPhone(client, caller)
    reply = await phone.begin()
    assert reply.redirect is not None
    assert reply.redirect.endswith("&timeout=1")
    for _ in range(MAX_TIMEOUTS - 1):
        reply = await phone.silence()
        assert not reply.final
        assert reply.dial is None
        assert "Бонусы" in reply.text  # the same menu again
    assert phone.last is not None
    last_redirect = phone.last.redirect
    assert last_redirect is not None
    reply = await phone.silence()
    assert reply.final
    assert reply.dial == OPERATOR_NUMBER
    assert "<Hangup" not in reply.raw

    items = await _waiting(client)
    assert len(items) == 1
    item = items[0]
    assert item["msisdn"] == caller
    assert item["channel"] == "ivr"
    assert item["reason"] == "max_timeouts"
    assert item["breadcrumb"] == ["main:(timeout)"] * MAX_TIMEOUTS
    assert item["balance"] == {"available": 40, "pending_in": 0, "pending_out": 0}
    # Twilio repeating the last redirect does not queue the caller twice.
    repeated = await phone.post(last_redirect, None)
    assert repeated.raw == reply.raw
    assert len(await _waiting(client)) == 1


async def test_silence_then_a_key_resets_nothing_it_should_not(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = TwilioPhone(client, caller)
    await phone.begin()
    reply = await phone.silence()
    assert not reply.final
    reply = await phone.send("1")
    assert "Баланс: 40" in reply.text
    assert await _waiting(client) == []


@pytest.mark.parametrize(
    ("path", "node"),
    [
        ([], "main"),
        (["1"], "balance_expiring"),
        (["3"], "spend"),
        (["3", "1"], "rewards"),
        (["4"], "gift_recipient"),
        (["6"], "language"),
        (["5"], "no_gifts"),
    ],
)
async def test_zero_from_any_menu_dials_the_operator(
    client: TestClient, pg_pool: asyncpg.Pool, path: list[str], node: str
) -> None:
    await ledger.load_catalog(pg_pool)
    caller = new_msisdn()
    await member(pg_pool, caller, 90)
    phone = TwilioPhone(client, caller)
    await phone.begin()
    for key in path:
        reply = await phone.send(key)
        assert not reply.final
    reply = await phone.send("0")
    assert reply.final
    assert reply.dial == OPERATOR_NUMBER
    assert "оператор" in reply.text

    items = await _waiting(client)
    assert len(items) == 1
    item = items[0]
    assert item["reason"] == "caller_request"
    breadcrumb = item["breadcrumb"]
    assert isinstance(breadcrumb, list)
    assert breadcrumb[-1] == f"{node}:0"
    assert len(breadcrumb) == len(path) + 1
    assert await available(pg_pool, caller) == 90
    await assert_sound(pg_pool)


async def test_status_callback_ends_the_call(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 5)
    phone = TwilioPhone(client, caller)
    await phone.begin()
    ringing = await client.post(
        "/ivr/twilio/status", data={**phone.form(None), "CallStatus": "ringing"}
    )
    assert ringing.status == 204
    reply = await phone.send("1")
    assert "Баланс: 5" in reply.text
    done = await phone.drop()
    assert done.status == 204
    reply = await phone.send("1")
    assert reply.final
    assert "Сессия истекла" in reply.text
