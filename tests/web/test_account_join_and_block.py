"""The web account: joining there is recorded as 'web' with one welcome SMS; a blocked
member reads that they are blocked and cannot give points."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from web_harness import deliver, form_fields, sign_in

import ledger
from menus import MenuRegistry

STRANGER = "+79035550044"


async def test_joining_on_the_web_records_the_channel_and_welcomes_once(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry
) -> None:
    home = await sign_in(web_client, pg_pool, menus, STRANGER)
    fields = form_fields(home, "/account/join")
    # A double click: the same form twice.
    for _ in range(2):
        resp = await web_client.post("/account/join", data=fields)
        assert resp.status == 200
    record = await ledger.enrollment_record(pg_pool, STRANGER)
    assert record is not None
    assert (record.status, record.channel, record.staff_id) == ("active", "web", None)
    sent = [m for m in await deliver(pg_pool, menus) if m.to == STRANGER]
    assert [m.text for m in sent] == [
        "Вы в программе! Баланс: 0 баллов. *111*455# или ПОМОЩЬ на 4555"
    ]


@pytest.mark.parametrize(
    ("language", "says"),
    [
        ("ru", "Бонусный счёт заблокирован: тратить и дарить баллы нельзя. Позвоните 0890."),
        ("en", "Your bonus account is blocked: points cannot be spent or given. Call 0890."),
    ],
)
async def test_a_blocked_member_sees_the_block_and_cannot_give(
    web_client: TestClient,
    pg_pool: asyncpg.Pool,
    menus: MenuRegistry,
    members: tuple[str, str],
    language: str,
    says: str,
) -> None:
    member, friend = members
    assert (await ledger.block(pg_pool, member, key="web-block", reason="fraud")).ok
    await sign_in(web_client, pg_pool, menus, member)
    home = await (await web_client.get(f"/account?lang={language}")).text()
    assert says in home
    page = await (await web_client.get("/account/give")).text()
    fields = form_fields(page, "/account/give")
    form = {**fields, "recipient": friend, "points": "50"}
    confirm = await (await web_client.post("/account/give", data=form)).text()
    sent = await web_client.post(
        "/account/give/confirm", data={**form_fields(confirm, "/account/give/confirm"), **form}
    )
    text = await sent.text()
    refusals = {"ru": "Бонусный счёт заблокирован.", "en": "Your bonus account is blocked."}
    assert refusals[language] in text
    assert (await ledger.pending_gifts(pg_pool, friend)).unwrap().count == 0
