"""The service as the Kannel tests see it: its URL, ledger pool, and a lossy link."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from ussd_service.config import Settings


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
