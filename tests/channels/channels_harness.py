"""Gateways for the dialect tests: a dialect's client half speaking real HTTP.

``Phone`` sends what the client half builds (the requests the gateway itself
would send) and reads the replies with it, keeping the raw reply as well, so
a test can check the wire format and the conversation at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

import ledger
from ussd_service.channels.dialect import GatewayRequest, GatewaySession, Reading

_counter = itertools.count(1)


def new_msisdn() -> str:
    """A fresh Russian mobile number in E.164 (unique within the test run)."""
    return f"+7916{next(_counter) + 2_000_000:07d}"


def local_form(msisdn: str) -> str:
    """The number as a Russian caller types it: 8 916 ..."""
    return "8" + msisdn[2:]


@dataclass(frozen=True)
class Raw:
    """A reply as it came over the wire."""

    status: int
    content_type: str
    body: str


async def exchange(client: TestClient, request: GatewayRequest) -> Raw:
    """Send ``request`` to the running app; the reply as it came."""
    headers = dict(request.headers)
    if request.content_type:
        headers["Content-Type"] = request.content_type
    resp = await client.request(
        request.method,
        request.path,
        params=dict(request.query) or None,
        data=request.body or None,
        headers=headers,
    )
    return Raw(resp.status, resp.content_type, await resp.text())


@dataclass
class Phone:
    """One session or call, driven through a dialect's client half."""

    client: TestClient
    session: GatewaySession
    last: Raw | None = None
    sent: list[GatewayRequest] = field(default_factory=list)

    async def send(self, request: GatewayRequest | None) -> Reading:
        assert request is not None, "the gateway sends nothing here"
        self.sent.append(request)
        self.last = await exchange(self.client, request)
        return self.session.read(self.last.status, self.last.body)

    async def begin(self) -> Reading:
        return await self.send(self.session.begin())

    async def answer(self, *keys: str) -> Reading:
        reading = None
        for key in keys:
            reading = await self.send(self.session.answer(key))
        assert reading is not None
        return reading

    async def silence(self) -> Reading:
        return await self.send(self.session.silence())

    async def end(self) -> Reading:
        return await self.send(self.session.end())


# -- ledger set-up and checks -------------------------------------------------


async def member(pool: Any, msisdn: str, points: int = 0) -> None:
    """Enrol ``msisdn`` (and credit ``points``) straight through the ledger."""
    out = await ledger.enroll(pool, msisdn, key=f"setup-enroll-{msisdn}")
    assert out.ok, out
    if points:
        acc = await ledger.accrue(pool, msisdn, points, key=f"setup-accrue-{msisdn}-{points}")
        assert acc.ok, acc


async def available(pool: Any, msisdn: str) -> int:
    """The member's available points."""
    out = await ledger.balance(pool, msisdn)
    assert out.ok, out
    return int(out.data["available"])


async def pending_points(pool: Any, msisdn: str) -> list[int]:
    """Points of the gifts waiting for ``msisdn``."""
    return [item.points for item in (await ledger.pending_gifts(pool, msisdn)).value.items]


async def assert_sound(pool: Any) -> None:
    """The ledger's own consistency check finds nothing."""
    assert await ledger.check(pool) == []


async def duplicate_hops(client: TestClient, channel: str) -> float:
    """Hops the service answered from a stored reply (``/metrics``)."""
    text = await (await client.get("/metrics")).text()
    prefix = f'ussd_duplicate_hops_total{{channel="{channel}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def waiting_handoffs(client: TestClient) -> list[dict[str, Any]]:
    """The operator queue, as the admin API shows it."""
    resp = await client.get("/v1/handoffs", params={"status": "waiting"})
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items
