"""Helpers of the web tests: forms, tokens, and SMS that really leave through the outbox."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import asyncpg
from aiohttp.test_utils import TestClient

import ledger
from menus import MenuRegistry
from ussd_service.notifier import Notifier, Outgoing

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class RecordingTransport:
    """The SMS gateway of the tests: keeps every message it is handed."""

    via: str = "test"
    sent: list[Outgoing] = field(default_factory=list)

    async def send(self, message: Outgoing) -> None:
        self.sent.append(message)


async def deliver(pool: asyncpg.Pool, menus: MenuRegistry) -> list[Outgoing]:
    """Run the notification worker once; the SMS it sent."""
    transport = RecordingTransport()
    await Notifier(pool, menus, transport).run_once()
    return transport.sent


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match, page[:500]
    return html.unescape(match.group(1))


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action`` (CSRF token, nonce, ...)."""
    start = page.index(f'action="{action}"')
    end = page.index("</form>", start)
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(
            r'type="hidden" name="([^"]+)" value="([^"]*)"', page[start:end]
        )
    }


def code_in(text: str) -> str:
    match = _CODE.search(text)
    assert match, text
    return match.group(1)


async def ask_code(client: TestClient, number: str) -> str:
    """Ask for a code on the sign-in page; the page it lands on."""
    page = await (await client.get("/account/login")).text()
    resp = await client.post("/account/login", data={"phone": number, "csrf_token": csrf_of(page)})
    return await resp.text()


async def sign_in(client: TestClient, pool: asyncpg.Pool, menus: MenuRegistry, number: str) -> str:
    """Sign in as ``number`` with the code of the SMS the worker sent; the account page."""
    page = await ask_code(client, number)
    sms = [m for m in await deliver(pool, menus) if m.to == ledger.normalize_msisdn(number, "RU")]
    assert sms, "no SMS with a code went out"
    resp = await client.post(
        "/account/login/code", data={"code": code_in(sms[-1].text), "csrf_token": csrf_of(page)}
    )
    assert resp.status == 200, await resp.text()
    assert resp.url.path == "/account", resp.url
    return await resp.text()
