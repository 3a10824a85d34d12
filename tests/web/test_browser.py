"""The account and the console in a real browser: Playwright driving Debian's Chromium.

The app runs on a loopback port with the suite's real Redis and PostgreSQL and
its background tasks, and sends SMS to a fake Kannel ``sendsms`` on another
loopback port: the sign-in codes are read from the SMS that left through the
outbox, as a phone would get them. Screenshots of the main pages, in Russian
and English, go to ``test-artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

import ledger
from ussd_service import redis_keys
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.web.limits import QUEUE_REFRESH_S
from ussd_service.web.operators import set_operator
from ussd_service.web.passwords import hash_password

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SENDER, FRIEND = "+79161234567", "+79161234568"
PASSWORD = "correct horse battery"
# Every wait of a step; the whole module stays well under a minute.
STEP_MS = 8_000
# The login_code SMS of menu_definitions.yaml, in either language.
_LOGIN_CODE = re.compile(r"(?:Код входа|sign-in code is):? (\d{6})")


@dataclass
class FakeKannel:
    """Kannel's ``sendsms`` as the notifier calls it (POST convention): keeps each SMS."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def sendsms(self, request: web.Request) -> web.Response:
        text = (await request.read()).decode("utf-8")
        self.messages.append((request.headers["X-Kannel-To"], text))
        self.arrived.set()
        return web.Response(status=202, text="0: Accepted for delivery")

    async def code_for(self, msisdn: str, after: int) -> str:
        """The code in the first SMS to ``msisdn`` past the ``after`` first messages."""
        async with asyncio.timeout(STEP_MS / 1000):
            while True:
                for to, text in self.messages[after:]:
                    match = _LOGIN_CODE.search(text)
                    if to == msisdn and match:
                        return match.group(1)
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Live:
    """The running service, its SMS gateway and the test's ledger."""

    url: str
    kannel: FakeKannel
    pool: asyncpg.Pool
    redis: aioredis.Redis


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium (make test does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture
async def live(
    settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[Live]:
    kannel = FakeKannel()
    gateway = web.Application()
    gateway.router.add_post("/cgi-bin/sendsms", kannel.sendsms)
    async with TestServer(gateway, host="127.0.0.1") as sms_server:
        served = settings.model_copy(
            update={
                "sms_gateway_url": str(sms_server.make_url("/cgi-bin/sendsms")),
                "notifier_interval": 0.1,
            }
        )
        await ledger.load_catalog(pg_pool)
        for number, points in ((SENDER, 500), (FRIEND, 100)):
            await ledger.enroll(pg_pool, number, key=f"seed-enroll-{number}")
            await ledger.accrue(pg_pool, number, points, key=f"seed-accrue-{number}")
        async with TestServer(create_app(served), host="127.0.0.1") as server:
            yield Live(str(server.make_url("")).rstrip("/"), kannel, pg_pool, redis_client)


async def _context(browser: Browser, live: Live, language: str) -> BrowserContext:
    context = await browser.new_context(
        base_url=live.url, locale=language, extra_http_headers={"Accept-Language": language}
    )
    context.set_default_timeout(STEP_MS)
    return context


async def _shoot(page: Page, directory: Path, name: str, *, both: bool = True) -> None:
    """Screenshots of the page in its language and (for a GET page) in the other."""
    lang = await page.get_attribute("html", "lang") or "ru"
    await page.screenshot(path=directory / f"{name}-{lang}.png", full_page=True)
    if both:
        other = "en" if lang == "ru" else "ru"
        url = page.url.split("?")[0]
        await page.goto(f"{url}?lang={other}")
        await page.screenshot(path=directory / f"{name}-{other}.png", full_page=True)
        await page.goto(f"{url}?lang={lang}")


async def _ask_code(page: Page, live: Live, typed: str, msisdn: str) -> str:
    """Type the number and send; the code of the SMS that arrived for it."""
    before = len(live.kannel.messages)
    await page.goto("/account")
    await expect(page).to_have_url(re.compile(r"/account/login$"))
    await page.locator('input[type="tel"][name="phone"]').fill(typed)
    await page.locator('form[action="/account/login"] button[type="submit"]').click()
    await expect(page.locator('input[name="code"][autocomplete="one-time-code"]')).to_be_visible()
    return await live.kannel.code_for(msisdn, before)


async def _enter_code(page: Page, code: str) -> None:
    await page.locator('input[name="code"]').fill(code)
    await page.locator('form[action="/account/login/code"] button').click()


async def _sign_in(page: Page, live: Live, msisdn: str) -> None:
    code = await _ask_code(page, live, msisdn, msisdn)
    await _enter_code(page, code)
    await expect(page).to_have_url(re.compile(r"/account$"))


async def test_sign_in_wrong_and_expired_codes_balance_redeem_once(
    browser: Browser, live: Live, screenshots: Path
) -> None:
    context = await _context(browser, live, "ru")
    page = await context.new_page()
    # Five wrong codes burn the code; even the right one fails after.
    code = await _ask_code(page, live, "8 (916) 123-45-67", SENDER)
    await _shoot(page, screenshots, "account-code")
    wrong = "000000" if code != "000000" else "111111"
    for left in ("4", "3", "2", "1"):
        await _enter_code(page, wrong)
        await expect(page.locator("#code-error")).to_contain_text(left)
    await _enter_code(page, wrong)
    await expect(page.locator("#code-error")).to_contain_text("больше не действует")
    await expect(page.locator('input[name="code"]')).to_have_count(0)
    # An expired code: five minutes pass (the code's key expires in Redis).
    code = await _ask_code(page, live, SENDER, SENDER)
    await live.redis.delete(redis_keys.login_code_key(SENDER))
    await _enter_code(page, code)
    await expect(page.locator("#code-error")).to_contain_text("истёк")
    # The right code, fresh from the SMS: signed in, the balance.
    await page.goto("/account/login")
    await _shoot(page, screenshots, "account-login")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await page.screenshot(path=screenshots / "account-login-phone-ru.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 720})
    await _sign_in(page, live, SENDER)
    await expect(page.locator("#balance")).to_have_text("500 баллов")
    await _shoot(page, screenshots, "account-balance")
    # Redeem the cheapest reward, confirming first.
    item = min((await ledger.list_catalog(live.pool)).unwrap().items, key=lambda i: i.price)
    await page.get_by_role("link", name="Награды", exact=True).first.click()
    await _shoot(page, screenshots, "account-rewards")
    await page.locator(f'a[href="/account/rewards/{item.code}"]').click()
    await _shoot(page, screenshots, "account-reward-confirm")
    form = page.locator(f'form[action="/account/rewards/{item.code}"]')
    fields = {
        name: await form.locator(f'input[name="{name}"]').input_value()
        for name in ("csrf_token", "nonce")
    }
    await form.locator("button").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Готово")
    # The same form sent again (a double click, a browser retry): one effect.
    again = await context.request.post(f"/account/rewards/{item.code}", form=fields)
    assert again.ok
    await page.reload()
    await expect(page.locator("#balance")).to_have_text(re.compile(f"^{500 - item.price} "))
    assert await live.pool.fetchval("SELECT count(*) FROM redemptions") == 1
    # A form whose CSRF token was taken out is refused.
    await page.goto(f"/account/rewards/{item.code}")
    await page.locator(
        f'form[action="/account/rewards/{item.code}"] input[name="csrf_token"]'
    ).evaluate("node => node.remove()")
    await page.locator(f'form[action="/account/rewards/{item.code}"] button').click()
    await expect(page.locator("body")).to_contain_text("did not come from this site")
    assert await live.pool.fetchval("SELECT count(*) FROM redemptions") == 1
    await context.close()


async def test_give_points_accepted_in_a_second_browser_and_cancel(
    browser: Browser, live: Live, screenshots: Path
) -> None:
    sender_ctx = await _context(browser, live, "ru")
    friend_ctx = await _context(browser, live, "en")
    sender, friend = await sender_ctx.new_page(), await friend_ctx.new_page()
    await _sign_in(sender, live, SENDER)
    await sender.get_by_role("link", name="Подарить баллы").first.click()
    await _shoot(sender, screenshots, "account-give")
    await sender.get_by_label("Номер получателя").fill("8 916 123 45 68")
    await sender.get_by_label("Сколько баллов").fill("40")
    await sender.get_by_role("button", name="Дальше").click()
    await expect(sender.locator("#recipient-full")).to_have_text("+7 916 123-45-68")
    await _shoot(sender, screenshots, "account-give-confirm", both=False)
    await sender.get_by_role("button", name="Подарить", exact=True).click()
    await expect(sender.locator(".flash-ok")).to_contain_text("+7 916 123-45-68")
    # The recipient, in English, in a browser of their own, accepts.
    await _sign_in(friend, live, FRIEND)
    await expect(friend.locator("#balance")).to_have_text("100 points")
    await friend.get_by_role("link", name=re.compile("gift is waiting")).click()
    await _shoot(friend, screenshots, "account-gifts")
    await friend.get_by_role("button", name="Accept").click()
    await expect(friend.locator(".flash-ok")).to_contain_text("Accepted 40 points")
    await friend.goto("/account")
    await expect(friend.locator("#balance")).to_have_text("140 points")
    # The sender gives again and takes it back.
    await sender.goto("/account/give")
    await sender.get_by_label("Номер получателя").fill(FRIEND)
    await sender.get_by_label("Сколько баллов").fill("25")
    await sender.get_by_role("button", name="Дальше").click()
    await sender.get_by_role("button", name="Подарить", exact=True).click()
    await expect(sender.locator("#sent-title")).to_be_visible()
    await sender.get_by_role("button", name="Отменить").click()
    await expect(sender.locator(".flash-ok")).to_contain_text("отменён")
    await sender.goto("/account")
    await expect(sender.locator("#balance")).to_have_text("460 баллов")
    await sender_ctx.close()
    await friend_ctx.close()


async def test_an_operator_claims_a_ussd_handoff_and_sees_its_breadcrumb(
    browser: Browser, live: Live, screenshots: Path
) -> None:
    await set_operator(live.pool, "alice", hash_password(PASSWORD))
    context = await _context(browser, live, "ru")
    page = await context.new_page()
    await page.goto("/operator")
    await expect(page).to_have_url(re.compile(r"/operator/login$"))
    await _shoot(page, screenshots, "operator-login")
    await page.get_by_label("Имя оператора").fill("alice")
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await expect(page.locator("#queue-status")).to_contain_text("0")
    # A caller on USSD (native JSON) asks for a person; the open queue shows it by itself.
    caller = "+79035550033"
    async with aiohttp.ClientSession() as ussd:
        for event, keys in (("begin", None), ("input", "3")):
            hop = {"session_id": "browser-1", "msisdn": caller, "event": event, "input": keys}
            async with ussd.post(f"{live.url}/ussd", json=hop) as resp:
                assert resp.status == 200, await resp.text()
    row = page.locator("table.queue tbody tr")
    await expect(row).to_have_count(1, timeout=(QUEUE_REFRESH_S + 3) * 1000)
    await expect(row).to_contain_text("+7 903 555-00-33")
    await _shoot(page, screenshots, "operator-queue")
    await row.get_by_role("button", name="Взять").click()
    await expect(page.locator("#handoff-status")).to_contain_text("alice")
    breadcrumb = await live.pool.fetchval("SELECT breadcrumb FROM handoffs")
    steps = re.findall(r'"([^"]+)"', breadcrumb)
    assert steps
    await expect(page.locator("#breadcrumb li")).to_have_text(steps)
    await expect(page.locator("#card-status")).to_contain_text("Номер не знаком")
    await _shoot(page, screenshots, "operator-handoff")
    await page.get_by_role("button", name="Подключить к программе").click()
    await expect(page.locator(".flash-ok")).to_contain_text("подключён")
    assert (await ledger.get_subscriber(live.pool, caller)).status == "active"
    actions = await live.pool.fetch("SELECT action FROM operator_audit ORDER BY id")
    assert [a["action"] for a in actions][:2] == ["sign_in", "claim"]
    await context.close()
