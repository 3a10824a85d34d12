"""The service as the Kannel tests see it: its URL, ledger pool, and a lossy link."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

import ledger
from ledger.outbox import OutboxMessage
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus
from ussd_service.notifier import render_notification

TZ = "Europe/Moscow"


@dataclass
class Lossy:
    """Loses the service's answer to the next ``count`` inbound SMS (a broken link).

    The service has answered (and acted); Kannel sees a 503 and retries.
    ``seen`` holds the raw request line of every inbound request.
    """

    count: int = 0
    seen: list[str] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path == "/sms/inbound":
            self.seen.append(f"{request.method} {request.raw_path} {await request.text()}")
            if self.count > 0:
                self.count -= 1
                return web.Response(status=503, text="lost on the way\n")
        return response


@dataclass
class Service:
    """The running service: its base URL, its ledger pool, an HTTP session, the lossy link."""

    url: str
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    settings: Settings
    lossy: Lossy

    async def get_json(self, path: str, **params: str) -> object:
        async with self.http.get(self.url + path, params=params) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics") as resp:
            return await resp.text()


_numbers = itertools.count(1)
_keys = itertools.count(1)


def numbers() -> tuple[str, str, str]:
    """Three fresh numbers (E.164) and the second as people type it."""
    n = next(_numbers)
    sender, recipient = f"+7916{n:03d}1001", f"+7916{n:03d}2002"
    typed = f"8 916 {n:03d}-20-02"
    return sender, recipient, typed


async def member(pool: asyncpg.Pool, msisdn: str, points: int = 0, language: str = "ru") -> None:
    n = next(_keys)
    # A member made for a test starts without a welcome SMS (a phone would get
    # it at any moment): enrolled a day ahead, the welcome is not due before it
    # is dropped, whatever the running worker does (test_join_by_sms has it).
    ahead = ledger.ManualClock(datetime.now(UTC) + timedelta(days=1))
    joined = await ledger.enroll(pool, msisdn, key=f"k-enroll-{n}", language=language, clock=ahead)
    assert joined.ok
    await pool.execute("DELETE FROM outbox WHERE event = 'welcome' AND msisdn = $1", msisdn)
    if points:
        assert (await ledger.accrue(pool, msisdn, points, key=f"k-accrue-{n}")).ok


async def available(pool: asyncpg.Pool, msisdn: str) -> int:
    return (await ledger.balance(pool, msisdn)).unwrap().available


async def outbox_to(pool: asyncpg.Pool, msisdn: str) -> list[OutboxMessage]:
    return [m for m in await ledger.list_outbox(pool, limit=500) if m.msisdn == msisdn]


def rendered(message: OutboxMessage, settings_menu: str) -> str:
    registry = load_menus(settings_menu)
    return render_notification(registry, message, TZ)


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll an async predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
