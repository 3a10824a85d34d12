"""The service under the tools: the app served on a loopback port, an HTTP client, a catalogue."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
from aiohttp import web

import ledger
from menus import MenuRegistry
from ussd_service.app import create_app
from ussd_service.config import Settings

LOOPBACK = "127.0.0.1"
HTTP_TIMEOUT_S = 30.0


@contextlib.asynccontextmanager
async def serve_app(
    settings: Settings,
    *,
    menus: MenuRegistry | None = None,
    background: bool = False,
    app: web.Application | None = None,
) -> AsyncIterator[str]:
    """Serve the app (``app``, or one built from ``settings``) on a free loopback port.

    Yields its base URL. Leaving stops it, which also flushes its drop-off counters.
    """
    if app is None:
        app = create_app(settings, menus=menus, background=background)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with the tools' timeouts."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def ensure_catalog(pool: asyncpg.Pool) -> bool:
    """Load the default rewards catalogue when the ledger has none; True if loaded."""
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM rewards")
    if count:
        return False
    await ledger.load_catalog(pool)
    return True
