"""The baseline server: the unavoidable work of a hop and nothing else.

A bare aiohttp handler that parses the same Africa's Talking (or Twilio) form
and does one Redis round trip (a Lua GET+SET with TTL, run by EVALSHA) per
request, then answers ``CON ...``. The service's figures are reported as
ratios to this server measured in the same run on the same machine.

``python -m bench.baseline --port P --redis-url URL``; prints ``ready`` when
it listens. For the Redis client comparison (bench/README.md, "Redis
clients"): ``--client`` redis-py (hiredis parser, the service's client),
redis-py-python (its pure-Python parser) or glide (valkey-glide, TCP URLs
only), ``--round-trips N`` runs the script N times per request, ``--loop
uvloop`` runs on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from redis._parsers import _AsyncRESP2Parser

SESSION_TTL_S = 180
KEY_PREFIX = "bench:baseline:"
REDIS_MAX_CONNECTIONS = 64
# GET the session, SET the new one with a TTL: one round trip, like a CAS save.
SCRIPT = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return old
"""
CLIENTS = ("redis-py", "redis-py-python", "glide")
LOOPS = ("asyncio", "uvloop")
# The script run once: key and value in, the previous value out.
Call = Callable[[str, str], Awaitable[Any]]
REDIS_URL = web.AppKey("redis_url", str)
CLIENT = web.AppKey("client", str)
ROUND_TRIPS = web.AppKey("round_trips", int)
SCRIPT_KEY: web.AppKey[Call] = web.AppKey("script")


async def _redis_py(url: str, *, python_parser: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    extra: dict[str, Any] = {"parser_class": _AsyncRESP2Parser} if python_parser else {}
    client = aioredis.Redis.from_url(url, max_connections=REDIS_MAX_CONNECTIONS, **extra)
    script = client.register_script(SCRIPT)

    async def call(key: str, value: str) -> Any:
        return await script(keys=[key], args=[value, SESSION_TTL_S])

    return call, client.aclose


async def _glide(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    # Imported here: valkey-glide is an optional extra (pip install -e '.[bench]').
    glide = importlib.import_module("glide")
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.hostname is None:
        raise SystemExit(f"glide takes a redis://host:port URL, not {parts.scheme}://")
    credentials = glide.ServerCredentials(parts.password) if parts.password else None
    address = glide.NodeAddress(parts.hostname, parts.port or 6379)
    config = glide.GlideClientConfiguration([address], credentials=credentials)
    client = await glide.GlideClient.create(config)
    script = glide.Script(SCRIPT)

    async def call(key: str, value: str) -> Any:
        return await client.invoke_script(script, keys=[key], args=[value, str(SESSION_TTL_S)])

    return call, client.close


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client, url = app[CLIENT], app[REDIS_URL]
    if client == "glide":
        call, close = await _glide(url)
    else:
        call, close = await _redis_py(url, python_parser=client == "redis-py-python")
    rounds = app[ROUND_TRIPS]
    if rounds == 1:
        app[SCRIPT_KEY] = call
    else:

        async def repeated(key: str, value: str) -> Any:
            for _ in range(rounds - 1):
                await call(key, value)
            return await call(key, value)

        app[SCRIPT_KEY] = repeated
    yield
    await close()


async def ussd(request: web.Request) -> web.Response:
    """Africa's Talking form in, ``CON`` text out."""
    form = await request.post()
    session = form.get("sessionId")
    text = form.get("text")
    if not isinstance(session, str) or not session or not isinstance(text, str):
        return web.Response(status=400, text="missing sessionId or text\n")
    if not isinstance(form.get("phoneNumber"), str):
        return web.Response(status=400, text="missing phoneNumber\n")
    script = request.app[SCRIPT_KEY]
    previous = await script(KEY_PREFIX + session, text)
    depth = text.count("*") + 1 if text else 0
    reply = f"CON Baseline hop {depth} (was {len(previous or b'')} bytes)\n1. Next"
    return web.Response(text=reply, content_type="text/plain", charset="utf-8")


async def ivr(request: web.Request) -> web.Response:
    """Twilio form in, a minimal TwiML Gather out."""
    form = await request.post()
    session = form.get("CallSid")
    if not isinstance(session, str) or not session:
        return web.Response(status=400, text="missing CallSid\n")
    digits = form.get("Digits", "")
    script = request.app[SCRIPT_KEY]
    await script(KEY_PREFIX + session, str(digits))
    seq = int(request.query.get("seq", "0")) + 1
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Gather action="/ivr/twilio?seq={seq}" numDigits="1"><Say>Baseline</Say></Gather>'
        f"<Redirect>/ivr/twilio?seq={seq}&amp;timeout=1</Redirect></Response>"
    )
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


async def ready(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(redis_url: str, client: str = "redis-py", round_trips: int = 1) -> web.Application:
    app = web.Application()
    app[REDIS_URL] = redis_url
    app[CLIENT] = client
    app[ROUND_TRIPS] = round_trips
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_post("/ussd/africastalking", ussd)
    app.router.add_post("/ivr/twilio", ivr)
    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--client", choices=CLIENTS, default="redis-py")
    parser.add_argument("--round-trips", type=int, default=1)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args()
    loop: asyncio.AbstractEventLoop | None = None
    if args.loop == "uvloop":
        loop = importlib.import_module("uvloop").new_event_loop()  # optional, like glide
    web.run_app(
        create_app(args.redis_url, args.client, args.round_trips),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
