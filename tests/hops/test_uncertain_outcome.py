# ruff: noqa: RUF001 - Cyrillic screen texts are what these tests check
"""A ledger call whose outcome is unknown never leaves a final answer behind.

The connection can die after PostgreSQL committed a gift but before the answer
reached the service. The subscriber hears "try later"; the gateway's retry of
that hop, and a redial that resumes the session, must ask the ledger again with
the same idempotency key and show what really happened: one gift, never two.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hops_harness import (
    DIALECTS,
    assert_sound,
    available,
    count_rows,
    local_form,
    make_phone,
    member,
    new_msisdn,
    same_hop,
)

import ledger
from ussd_service import menu_operations
from ussd_service.menu_operations import Operation


@pytest.fixture
def connection_lost_after_commit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first gift commits, then its connection dies before the answer arrives."""
    calls: list[str] = []

    async def gift(pool: asyncpg.Pool, sender: str, recipient: str, points: int, **kw: Any):  # type: ignore[no-untyped-def]
        outcome = await ledger.gift(pool, sender, recipient, points, **kw)
        calls.append(kw["key"])
        if len(calls) == 1:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return outcome

    original = menu_operations.REGISTRY["gift"]
    lost = Operation("gift", original.function, original.codes)
    object.__setattr__(lost, "function", gift)
    monkeypatch.setitem(menu_operations.REGISTRY, "gift", lost)  # type: ignore[arg-type]
    return calls


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_retried_confirmation_after_a_lost_answer_shows_the_gift_sent_once(
    client: TestClient, pg_pool: asyncpg.Pool, dialect: str, connection_lost_after_commit: list[str]
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = make_phone(dialect, client, sender)
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    await phone.send("100")
    retry = same_hop(phone, "1")

    first = await retry()
    assert "Подарок отправлен" not in first.text  # the answer was lost: "try later"
    again = await retry()
    assert "Подарок отправлен" in again.text, again.text
    assert len(set(connection_lost_after_commit)) == 1  # the same key both times
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    assert await available(pg_pool, sender) == 900
    await assert_sound(pg_pool)


async def test_a_redial_after_a_lost_answer_resumes_with_the_same_key(
    client: TestClient, pg_pool: asyncpg.Pool, connection_lost_after_commit: list[str]
) -> None:
    sender, recipient = new_msisdn(), new_msisdn()
    await member(pg_pool, sender, 1000)
    await member(pg_pool, recipient)
    phone = make_phone("native", client, sender)
    await phone.begin()
    await phone.send("4")
    await phone.send(local_form(recipient))
    await phone.send("100")
    lost = await phone.send("1")
    assert lost.final
    assert "Подарок отправлен" not in lost.text

    redial = make_phone("native", client, sender)
    offer = await redial.begin()
    assert "Продолжить с места" in offer.text, offer.text
    confirm = await redial.send("1")
    assert "Подарить 100" in confirm.text  # back at the confirmation
    sent = await redial.send("1")
    assert "Подарок отправлен" in sent.text, sent.text
    assert len(set(connection_lost_after_commit)) == 1
    assert await count_rows(pg_pool, "SELECT count(*) FROM gifts") == 1
    assert await available(pg_pool, sender) == 900
    await assert_sound(pg_pool)
