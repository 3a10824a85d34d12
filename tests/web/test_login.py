"""Sign-in with a one-time code by SMS: delivery, limits, cookies, CSRF, sign-out."""

from __future__ import annotations

import re

import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from web_harness import ask_code, code_in, csrf_of, deliver, sign_in

from menus import MenuRegistry
from ussd_service import redis_keys
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.web import limits


async def test_the_code_goes_out_as_an_sms_through_the_outbox(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    page = await ask_code(web_client, "8 916 123-45-67")
    assert 'autocomplete="one-time-code"' in page
    assert "+7 916 123-45-67" in page
    rows = await pg_pool.fetch("SELECT event, msisdn, payload FROM outbox")
    assert [(r["event"], r["msisdn"]) for r in rows] == [("login_code", "+79161234567")]
    sms = await deliver(pg_pool, menus)
    assert len(sms) == 1
    assert sms[0].to == "+79161234567"
    assert re.fullmatch(r"Код входа: \d{6}\. Действует 5 мин\.", sms[0].text), sms[0].text
    status = await pg_pool.fetchval("SELECT status FROM outbox")
    assert status == "sent"


async def test_sign_in_sets_a_strict_session_cookie_and_sign_out_kills_it(
    web_client: TestClient,
    pg_pool: asyncpg.Pool,
    menus: MenuRegistry,
    redis_client: aioredis.Redis,
    members: tuple[str, str],
) -> None:
    resp = await web_client.get("/account/login")
    set_cookie = resp.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/account"):
        assert attribute in set_cookie
    assert "Secure" not in set_cookie  # plain http: no https USSD_PUBLIC_URL
    assert "expires" not in set_cookie.lower(), "a browser-session cookie"
    anonymous = web_client.session.cookie_jar.filter_cookies(web_client.make_url("/account"))
    home = await sign_in(web_client, pg_pool, menus, members[0])
    assert "+7 916 123-45-67" in home
    assert "500" in home
    cookie = web_client.session.cookie_jar.filter_cookies(web_client.make_url("/account"))
    morsel = cookie["account_session"]
    assert morsel.value != anonymous["account_session"].value, "a new session id on sign-in"
    session_keys = await redis_client.keys("web:session:*")
    assert len(session_keys) == 1  # the anonymous session was replaced, not kept
    assert morsel.value in session_keys[0].decode()
    resp = await web_client.post("/account/logout", data={"csrf_token": csrf_of(home)})
    assert resp.url.path == "/account/login"
    assert not await redis_client.exists(session_keys[0]), "the record is deleted"
    # The sign-in page that follows starts an anonymous session of its own.
    assert session_keys[0] not in await redis_client.keys("web:session:*")
    resp = await web_client.get("/account", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/account/login"


async def test_cookie_is_secure_behind_https(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    secure = settings.model_copy(update={"public_url": "https://bonus.example"})
    async with TestClient(TestServer(create_app(secure, background=False))) as client:
        resp = await client.get("/account/login")
        assert resp.status == 200
        set_cookie = resp.headers["Set-Cookie"]
    assert "Secure" in set_cookie
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie


async def test_five_wrong_codes_burn_it(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    page = await ask_code(web_client, members[0])
    right = code_in((await deliver(pg_pool, menus))[0].text)
    wrong = "000000" if right != "000000" else "111111"
    token = csrf_of(page)
    for left in (4, 3, 2, 1):
        resp = await web_client.post(
            "/account/login/code", data={"code": wrong, "csrf_token": token}
        )
        assert resp.status == 422
        assert f"{left} " in await resp.text()
    resp = await web_client.post("/account/login/code", data={"code": wrong, "csrf_token": token})
    assert "больше не действует" in await resp.text()
    resp = await web_client.post("/account/login/code", data={"code": right, "csrf_token": token})
    assert resp.status == 422, "a burnt code stays burnt"
    assert resp.url.path == "/account/login/code"


async def test_a_code_is_single_use_and_expires_with_its_key(
    web_client: TestClient,
    pg_pool: asyncpg.Pool,
    menus: MenuRegistry,
    redis_client: aioredis.Redis,
    members: tuple[str, str],
) -> None:
    await ask_code(web_client, members[0])
    code = code_in((await deliver(pg_pool, menus))[0].text)
    key = redis_keys.login_code_key(members[0])
    assert key == "web:login:{+79161234567}:code"  # hash-tagged: one slot on a cluster
    assert 290 <= await redis_client.ttl(key) <= limits.CODE_TTL_S == 300
    stored = await redis_client.hgetall(key)
    assert code.encode() not in b"".join(stored.values()), "only a salted digest is kept"
    await redis_client.pexpire(key, 1)  # five minutes later
    await redis_client.delete(key)
    page = await (await web_client.get("/account/login/code")).text()
    resp = await web_client.post(
        "/account/login/code", data={"code": code, "csrf_token": csrf_of(page)}
    )
    assert "истёк" in await resp.text()


async def test_the_page_never_tells_members_from_strangers(
    web_client: TestClient, pg_pool: asyncpg.Pool, menus: MenuRegistry, members: tuple[str, str]
) -> None:
    member_page = await ask_code(web_client, members[0])
    stranger_page = await ask_code(web_client, "+79031112233")

    def neutral(page: str) -> str:
        page = re.sub(r'value="[^"]*"', 'value=""', page)
        return page.replace("+7 916 123-45-67", "N").replace("+7 903 111-22-33", "N")

    assert neutral(member_page) == neutral(stranger_page)
    sent = await deliver(pg_pool, menus)
    assert sorted(m.to for m in sent) == ["+79031112233", members[0]]


async def test_codes_per_number_are_limited(
    web_client: TestClient, pg_pool: asyncpg.Pool, members: tuple[str, str]
) -> None:
    for _ in range(limits.CODES_PER_NUMBER):
        await ask_code(web_client, members[0])
    page = await (await web_client.get("/account/login")).text()
    resp = await web_client.post(
        "/account/login", data={"phone": members[0], "csrf_token": csrf_of(page)}
    )
    assert resp.status == 429
    assert "Слишком много запросов" in await resp.text()
    assert await pg_pool.fetchval("SELECT count(*) FROM outbox") == limits.CODES_PER_NUMBER


async def test_codes_per_client_address_are_limited(
    web_client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    for i in range(limits.CODES_PER_CLIENT):
        await ask_code(web_client, f"+7916000{i:04d}")
    page = await ask_code(web_client, "+79169999999")
    assert "Слишком много запросов" in page
    assert await pg_pool.fetchval("SELECT count(*) FROM outbox") == limits.CODES_PER_CLIENT


async def test_a_form_without_its_csrf_token_is_refused(web_client: TestClient) -> None:
    await web_client.get("/account/login")
    resp = await web_client.post("/account/login", data={"phone": "+79161234567"})
    assert resp.status == 403
    body = await resp.text()
    assert "\n" not in body.strip()
    resp = await web_client.post(
        "/account/login", data={"phone": "+79161234567", "csrf_token": "forged"}
    )
    assert resp.status == 403


async def test_a_form_from_another_site_is_refused(web_client: TestClient) -> None:
    page = await (await web_client.get("/account/login")).text()
    resp = await web_client.post(
        "/account/login",
        data={"phone": "+79161234567", "csrf_token": csrf_of(page)},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403


async def test_pages_carry_security_headers(web_client: TestClient) -> None:
    resp = await web_client.get("/account/login")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    assert 'type="tel" name="phone"' in await resp.text()


async def test_language_follows_the_browser_and_the_switch(web_client: TestClient) -> None:
    page = await (
        await web_client.get("/account/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    ).text()
    assert "Sign in to your account" in page
    page = await (await web_client.get("/account/login?lang=ru")).text()
    assert "Вход в личный кабинет" in page
    page = await (await web_client.get("/account/login", headers={"Accept-Language": "en"})).text()
    assert "Вход в личный кабинет" in page, "the choice is remembered in the session"


async def test_forms_that_cannot_be_read_are_a_400(web_client: TestClient) -> None:
    await web_client.get("/account/login")
    for content_type in (
        "application/x-www-form-urlencoded; charset=bogus",
        "multipart/form-data; boundary=",
    ):
        resp = await web_client.post(
            "/account/login", data=b"phone=1", headers={"Content-Type": content_type}
        )
        assert resp.status in (400, 403), content_type
        assert "\n" not in (await resp.text()).strip()
    page = await (await web_client.get("/account/login")).text()
    resp = await web_client.post(
        "/account/login",
        data={"phone": "+79161234567", "csrf_token": csrf_of(page)},
        headers={"Origin": "http://["},
    )
    assert resp.status == 403
