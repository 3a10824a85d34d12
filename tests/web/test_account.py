"""The account pages over HTTP: every change through the ledger, once per form."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
from aiohttp.test_utils import TestClient
from web_harness import csrf_of, form_fields, sign_in

import ledger
from menus import MenuRegistry


async def test_balance_shows_what_expires_when(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    soon = date.today() + timedelta(days=40)
    await ledger.accrue(pg_pool, members[0], 70, key="soon", expires_at=soon)
    home = await sign_in(web_client, pg_pool, menus, members[0])
    assert "570 баллов" in home
    later = home.index("500 баллов", home.index("Когда сгорают баллы"))
    assert home.index("70 баллов", home.index("Когда сгорают баллы")) < later, "soonest first"
    assert str(soon.year) in home


async def test_redeem_twice_with_one_form_is_one_redemption(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    await sign_in(web_client, pg_pool, menus, members[0])
    catalog = (await ledger.list_catalog(pg_pool)).unwrap().items
    item = min(catalog, key=lambda i: i.price)
    rewards = await (await web_client.get("/account/rewards")).text()
    assert item.title in rewards
    page = await (await web_client.get(f"/account/rewards/{item.code}")).text()
    fields = form_fields(page, f"/account/rewards/{item.code}")
    for _ in range(2):
        resp = await web_client.post(f"/account/rewards/{item.code}", data=fields)
        assert resp.status == 200
        assert resp.url.path == "/account"
    balance = (await ledger.balance(pg_pool, members[0])).unwrap()
    assert balance.available == 500 - item.price
    redemptions = await pg_pool.fetchval("SELECT count(*) FROM redemptions")
    assert redemptions == 1


async def test_give_accept_and_cancel(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    sender, friend = members
    await sign_in(web_client, pg_pool, menus, sender)
    give = await (await web_client.get("/account/give")).text()
    resp = await web_client.post(
        "/account/give",
        data={"recipient": "8 (916) 123-45-68", "points": "40", "csrf_token": csrf_of(give)},
    )
    confirm = await resp.text()
    assert "+7 916 123-45-68" in confirm  # the recipient in full
    fields = form_fields(confirm, "/account/give/confirm")
    assert fields["recipient"] == friend
    resp = await web_client.post("/account/give/confirm", data=fields)
    gifts_page = await resp.text()
    assert resp.url.path == "/account/gifts"
    assert "+7 916 123-45-68" in gifts_page
    await web_client.post("/account/give/confirm", data=fields)  # sent again: one gift
    sent = (await ledger.sent_gifts(pg_pool, sender)).unwrap()
    assert sent.count == 1
    gift_id = sent.items[0].gift_id
    # Cancel it.
    gifts_page = await (await web_client.get("/account/gifts")).text()
    cancel = form_fields(gifts_page, f"/account/gifts/{gift_id}/cancel")
    resp = await web_client.post(f"/account/gifts/{gift_id}/cancel", data=cancel)
    assert "отменён" in await resp.text()
    assert (await ledger.balance(pg_pool, sender)).unwrap().available == 500


async def test_received_gift_accept_and_decline(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    sender, friend = members
    first = (await ledger.gift(pg_pool, sender, friend, 30, key="g1")).unwrap()
    second = (await ledger.gift(pg_pool, sender, friend, 20, key="g2")).unwrap()
    await sign_in(web_client, pg_pool, menus, friend)
    page = await (await web_client.get("/account/gifts")).text()
    assert "+7 916 123-45-67" in page
    accept = form_fields(page, f"/account/gifts/{first.gift_id}/accept")
    decline = form_fields(page, f"/account/gifts/{second.gift_id}/decline")
    resp = await web_client.post(f"/account/gifts/{first.gift_id}/accept", data=accept)
    assert "Принято 30 баллов" in await resp.text()
    resp = await web_client.post(f"/account/gifts/{second.gift_id}/decline", data=decline)
    assert "отклонён" in await resp.text()
    assert (await ledger.balance(pg_pool, friend)).unwrap().available == 130
    assert (await ledger.balance(pg_pool, sender)).unwrap().available == 470


async def test_a_stranger_joins_and_changes_language(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry
) -> None:
    home = await sign_in(web_client, pg_pool, menus, "+79035550011")
    assert "Вступить в программу" in home
    resp = await web_client.post("/account/join", data=form_fields(home, "/account/join"))
    assert "Добро пожаловать" in await resp.text()
    assert (await ledger.get_subscriber(pg_pool, "+79035550011")).status == "active"
    page = await (await web_client.get("/account/language")).text()
    fields = form_fields(page, "/account/language")
    resp = await web_client.post("/account/language", data={**fields, "language": "en"})
    assert "Language changed." in await resp.text()
    assert (await ledger.get_subscriber(pg_pool, "+79035550011")).language == "en"


async def test_history_lists_movements(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    await sign_in(web_client, pg_pool, menus, members[0])
    page = await (await web_client.get("/account/history?lang=en")).text()
    assert "Points earned" in page
    assert "+500" in page


async def test_signed_out_pages_lead_to_the_sign_in(web_client: TestClient) -> None:
    for path in ("/account", "/account/history", "/account/gifts", "/account/rewards/x1"):
        resp = await web_client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"] == "/account/login"
