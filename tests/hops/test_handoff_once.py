"""A caller reaches a person once per session and reason, whatever the gateway repeats."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient
from hops_harness import AfricasTalkingPhone, TwilioPhone, count_rows, member, new_msisdn


async def test_africastalking_operator_screen_answered_again_files_one_handoff(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = AfricasTalkingPhone(client, caller)
    await phone.post("")
    first = await phone.post("7")
    assert first.final
    # The gateway keeps sending after the END: a later input, then the old one again.
    await phone.post("7*1")
    await phone.post("7")
    assert await count_rows(pg_pool, "SELECT count(*) FROM handoffs WHERE msisdn = $1", caller) == 1


async def test_twilio_retried_request_after_the_dial_files_one_handoff(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    caller = new_msisdn()
    await member(pg_pool, caller, 40)
    phone = TwilioPhone(client, caller)
    await phone.begin()
    earlier = phone.action()
    await phone.send("1")  # the balance
    last = phone.action()
    dialled = await phone.send("0")
    assert dialled.dial is not None
    # Twilio repeats the last webhook (same seq), then an earlier one arrives late.
    await phone.post(last, "0")
    await phone.post(earlier, "1")
    assert await count_rows(pg_pool, "SELECT count(*) FROM handoffs WHERE msisdn = $1", caller) == 1
