"""The baseline server: the unavoidable work of a hop and nothing else.

A bare aiohttp handler that parses the same Africa's Talking (or Twilio) form
and does one Redis round trip (a Lua GET+SET with TTL, run by EVALSHA) per
request, then answers ``CON ...``. The service's figures are reported as
ratios to this server measured in the same run on the same machine.

``python -m bench.baseline --port P --redis-url URL``; prints ``ready`` when
it listens.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web
from redis.commands.core import AsyncScript

SESSION_TTL_S = 180
KEY_PREFIX = "bench:baseline:"
REDIS_MAX_CONNECTIONS = 64
# GET the session, SET the new one with a TTL: one round trip, like a CAS save.
SCRIPT = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return old
"""
REDIS_URL = web.AppKey("redis_url", str)
REDIS = web.AppKey("redis", aioredis.Redis)
SCRIPT_KEY = web.AppKey("script", AsyncScript)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(app[REDIS_URL], max_connections=REDIS_MAX_CONNECTIONS)
    app[REDIS] = client
    app[SCRIPT_KEY] = client.register_script(SCRIPT)
    yield
    await client.aclose()


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
    previous = await script(keys=[KEY_PREFIX + session], args=[text, SESSION_TTL_S])
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
    await script(keys=[KEY_PREFIX + session], args=[str(digits), SESSION_TTL_S])
    seq = int(request.query.get("seq", "0")) + 1
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Gather action="/ivr/twilio?seq={seq}" numDigits="1"><Say>Baseline</Say></Gather>'
        f"<Redirect>/ivr/twilio?seq={seq}&amp;timeout=1</Redirect></Response>"
    )
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


async def ready(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(redis_url: str) -> web.Application:
    app = web.Application()
    app[REDIS_URL] = redis_url
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
    args = parser.parse_args()
    web.run_app(
        create_app(args.redis_url), host=args.host, port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
