"""Helpers of the SMS tests: subscribers, an SMS phone, and a fake operator SMS gateway.

The fake gateway is a real aiohttp server speaking Kannel's ``sendsms``
convention (query parameters, 202 "Accepted for delivery"); it can refuse the
first attempts or be down altogether.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import ledger
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.notifier import notifier_ctx

SENDER = "+79161234567"
RECIPIENT = "+79167654321"
THIRD = "+79031112233"
SHORT_NUMBER = "4555"
GATEWAY_PATH = "/cgi-bin/sendsms"

_keys = itertools.count()


async def member(pool: asyncpg.Pool, msisdn: str, *, points: int = 0, language: str = "ru") -> None:
    """Enroll ``msisdn`` in ``language`` and credit ``points``."""
    n = next(_keys)
    out = await ledger.enroll(pool, msisdn, key=f"test-enroll-{n}", language=language)
    assert out.ok, out
    # A member made for a test starts without their welcome SMS, so the outbox
    # holds only what the test does (tests/sms/test_join.py tests the welcome).
    await pool.execute("DELETE FROM outbox WHERE event = 'welcome' AND msisdn = $1", msisdn)
    if points:
        acc = await ledger.accrue(pool, msisdn, points, key=f"test-accrue-{n}")
        assert acc.ok, acc


async def available(pool: asyncpg.Pool, msisdn: str) -> int:
    out = await ledger.balance(pool, msisdn)
    assert out.ok, out
    return out.unwrap().available


def sms_app(settings: Settings, *, worker: bool = False) -> web.Application:
    """The service (SMS routes included), and its notifier when asked."""
    app = create_app(settings, background=False)
    if worker:
        app.cleanup_ctx.append(notifier_ctx)
    return app


class Phone:
    """Sends SMS to 4555 through the gateway endpoint, as the SMS centre would."""

    def __init__(self, client: TestClient, msisdn: str) -> None:
        self.client = client
        self.msisdn = msisdn

    async def send(self, text: str, message_id: str | None = None) -> str:
        status, body = await post_sms(self.client, self.msisdn, text, message_id)
        assert status == 200, body
        return body


async def post_sms(
    client: TestClient,
    sender: str,
    text: str,
    message_id: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    form = {"from": sender, "to": SHORT_NUMBER, "text": text}
    if message_id is not None:
        form["id"] = message_id
    resp = await client.post("/sms/inbound", data=form, headers=headers)
    return resp.status, await resp.text()


# Kannel's POST convention: X-Kannel-* headers, by sendsms parameter name.
_KANNEL_HEADERS = {
    "x-kannel-from": "from",
    "x-kannel-to": "to",
    "x-kannel-username": "username",
    "x-kannel-password": "password",
    "x-kannel-coding": "coding",
    "x-kannel-dlr-mask": "dlr-mask",
    "x-kannel-dlr-url": "dlr-url",
}


@dataclass
class FakeGateway:
    """Kannel's sendsms for failures Kannel cannot make on demand (5xx, slowness).

    It reads a request as Kannel does: GET parameters from the query; a POST
    from its ``text/plain`` body and ``X-Kannel-*`` headers, its query ignored
    (so credentials only in a POST's query fail as on Kannel: 403).
    ``accepted`` holds each accepted message's parameters by sendsms name.
    """

    fail_first: int = 0
    down: bool = False
    delay_s: float = 0.0
    attempts: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # Set whenever a message is accepted.
    delivered: asyncio.Event = field(default_factory=asyncio.Event)

    async def sendsms(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            params = {
                name: request.headers[header]
                for header, name in _KANNEL_HEADERS.items()
                if header in request.headers
            }
            if request.content_type == "text/plain":
                params["text"] = (await request.read()).decode(request.charset or "utf-8")
                params["charset"] = request.charset or ""
        else:
            params = dict(request.query)
        self.requests.append((request.method, params))
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            return web.Response(status=503, text="Service unavailable")
        if self.attempts <= self.fail_first:
            return web.Response(status=500, text="Temporary failure, try again")
        if "username" not in params:
            return web.Response(status=403, text="Authorization failed for sendsms")
        self.accepted.append(params)
        self.delivered.set()
        return web.Response(status=202, text="0: Accepted for delivery")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", GATEWAY_PATH, self.sendsms)
        return app

    def texts_to(self, msisdn: str) -> list[str]:
        return [p["text"] for p in self.accepted if p["to"] == msisdn]


async def start_gateway(gateway: FakeGateway) -> TestServer:
    server = TestServer(gateway.app())
    await server.start_server()
    return server


ROOT = Path(__file__).resolve().parents[2]


async def run_worker_once(settings: Settings, **env: str) -> tuple[str, str]:
    """``ussd-service worker --once`` against the test servers, with no SMS
    gateway configured (messages go to the log) and ``env`` on top; its stdout
    and stderr. Fails the test when the command does not exit 0."""
    full: dict[str, str] = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "DATABASE_URL": settings.database_url or "",
        "USSD_MENU_FILE": str(settings.menu_file),
        **env,
    }
    full.pop("USSD_SMS_GATEWAY_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from ussd_service.cli import main; main()",
        "worker",
        "--once",
        cwd=ROOT,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()
