"""Phones for the hop tests: one per gateway dialect, all speaking real HTTP.

Each phone keeps what its gateway would keep (the Africa's Talking path, the
native hop counter, the Twilio ``seq`` of the last ``<Gather>``) and turns the
reply into a ``Reply`` the tests compare across dialects.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

import ledger
from embedded_servers import EmbeddedServers

_counter = itertools.count(1)


def new_msisdn() -> str:
    """A fresh Russian mobile number in E.164 (unique within the test run)."""
    return f"+7916{next(_counter) + 1_000_000:07d}"


def local_form(msisdn: str) -> str:
    """The number as a Russian caller types it: 8 916 ..."""
    return "8" + msisdn[2:]


@dataclass
class Reply:
    """What the subscriber got back, whatever the dialect."""

    status: int
    text: str
    final: bool
    dial: str | None = None
    raw: str = ""
    gather_action: str | None = None
    redirect: str | None = None

    def has(self, *fragments: str) -> bool:
        return all(f in self.text for f in fragments)


def parse_twiml(status: int, body: str) -> Reply:
    """A Reply from a TwiML answer."""
    root = ET.fromstring(body)
    says = [el.text or "" for el in root.iter("Say")]
    dial_el = root.find("Dial")
    dial = None
    if dial_el is not None:
        target = dial_el.find("Number")
        if target is None:
            target = dial_el.find("Sip")
        dial = (target.text if target is not None else dial_el.text) or ""
    gather = root.find("Gather")
    redirect = root.find("Redirect")
    final = gather is None
    return Reply(
        status=status,
        text="\n".join(says),
        final=final,
        dial=dial,
        raw=body,
        gather_action=gather.get("action") if gather is not None else None,
        redirect=redirect.text if redirect is not None else None,
    )


@dataclass
class AfricasTalkingPhone:
    """USSD through ``POST /ussd/africastalking`` (text accumulates ``*``-joined inputs)."""

    client: TestClient
    msisdn: str
    session_id: str = field(default_factory=lambda: "ATUid_" + uuid.uuid4().hex)
    service_code: str = "*111*455#"
    inputs: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def form(self, text: str) -> dict[str, str]:
        return {
            "sessionId": self.session_id,
            "serviceCode": self.service_code,
            "phoneNumber": self.msisdn,
            "networkCode": "25001",
            "text": text,
        }

    async def post(self, text: str) -> Reply:
        resp = await self.client.post(
            "/ussd/africastalking", data=self.form(text), headers=self.headers
        )
        body = await resp.text()
        if resp.status != 200:
            return Reply(resp.status, body, True, raw=body)
        assert body.startswith(("CON ", "END ")), body
        return Reply(resp.status, body[4:], body.startswith("END "), raw=body)

    async def begin(self) -> Reply:
        self.inputs = []
        return await self.post("")

    async def send(self, key: str) -> Reply:
        self.inputs.append(key)
        return await self.post("*".join(self.inputs))

    async def drop(self) -> None:
        """Africa's Talking never says a session ended; nothing to send."""


@dataclass
class NativePhone:
    """USSD through the native JSON ``POST /ussd`` (hop ids given)."""

    client: TestClient
    msisdn: str
    session_id: str = field(default_factory=lambda: "nat-" + uuid.uuid4().hex)
    service_code: str = "*111*455#"
    use_hop_ids: bool = True
    hop: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def body(
        self, event: str, text: str | None = None, hop_id: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "msisdn": self.msisdn,
            "service_code": self.service_code,
            "event": event,
        }
        if text is not None:
            data["input"] = text
        if hop_id is not None:
            data["hop_id"] = hop_id
        return data

    async def post_json(self, data: dict[str, Any]) -> Reply:
        resp = await self.client.post("/ussd", json=data, headers=self.headers)
        if resp.status != 200:
            body = await resp.text()
            return Reply(resp.status, body, True, raw=body)
        answer = await resp.json()
        assert answer["action"] in ("continue", "end"), answer
        return Reply(resp.status, answer["text"], answer["action"] == "end", raw=str(answer))

    def next_hop_id(self) -> str | None:
        self.hop += 1
        return f"h{self.hop}" if self.use_hop_ids else None

    async def begin(self) -> Reply:
        self.hop = 0
        return await self.post_json(self.body("begin", hop_id=self.next_hop_id()))

    def input_body(self, key: str) -> dict[str, Any]:
        return self.body("input", key, hop_id=self.next_hop_id())

    async def send(self, key: str) -> Reply:
        return await self.post_json(self.input_body(key))

    async def drop(self) -> Reply:
        return await self.post_json(self.body("abort", hop_id=f"abort{self.hop}"))


@dataclass
class TwilioPhone:
    """The 0890 voice line through ``POST /ivr/twilio`` (TwiML back)."""

    client: TestClient
    msisdn: str
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    last: Reply | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def form(self, digits: str | None) -> dict[str, str]:
        data = {
            "CallSid": self.call_sid,
            "From": self.msisdn,
            "To": "0890",
            "CallStatus": "in-progress",
        }
        if digits is not None:
            data["Digits"] = digits
        return data

    async def post(self, url: str, digits: str | None) -> Reply:
        resp = await self.client.post(url, data=self.form(digits), headers=self.headers)
        body = await resp.text()
        if resp.status != 200:
            return Reply(resp.status, body, True, raw=body)
        assert resp.content_type == "text/xml", body
        self.last = parse_twiml(resp.status, body)
        return self.last

    async def begin(self) -> Reply:
        return await self.post("/ivr/twilio", None)

    def action(self) -> str:
        assert self.last is not None
        assert self.last.gather_action, "no <Gather> to answer"
        return self.last.gather_action

    def seq(self) -> int:
        query = parse_qs(urlsplit(self.action()).query)
        return int(query["seq"][0])

    async def send(self, key: str) -> Reply:
        return await self.post(self.action(), key)

    async def silence(self) -> Reply:
        """The caller pressed nothing: Twilio follows the ``<Redirect>``."""
        assert self.last is not None
        assert self.last.redirect, "no <Redirect> to follow"
        return await self.post(self.last.redirect, None)

    async def drop(self) -> Reply:
        resp = await self.client.post(
            "/ivr/twilio/status",
            data={**self.form(None), "CallStatus": "completed"},
            headers=self.headers,
        )
        return Reply(resp.status, await resp.text(), True)


Phone = AfricasTalkingPhone | NativePhone | TwilioPhone


def same_hop(phone: Phone, key: str) -> Callable[[], Awaitable[Reply]]:
    """A function sending the very same request each time (as a retrying gateway does)."""
    if isinstance(phone, AfricasTalkingPhone):
        path = "*".join([*phone.inputs, key])
        return lambda: phone.post(path)
    if isinstance(phone, NativePhone):
        body = phone.input_body(key)
        return lambda: phone.post_json(body)
    assert isinstance(phone, TwilioPhone)
    url = phone.action()
    return lambda: phone.post(url, key)

DIALECTS = ("africastalking", "native", "twilio")


def make_phone(dialect: str, client: TestClient, msisdn: str) -> Phone:
    if dialect == "africastalking":
        return AfricasTalkingPhone(client, msisdn)
    if dialect == "native":
        return NativePhone(client, msisdn)
    return TwilioPhone(client, msisdn)


# -- ledger set-up and checks -------------------------------------------------


async def member(pool: Any, msisdn: str, points: int = 0, language: str | None = None) -> None:
    """Enrol ``msisdn`` (and credit ``points``) straight through the ledger."""
    out = await ledger.enroll(pool, msisdn, key=f"setup-enroll-{msisdn}", language=language)
    assert out.ok, out
    if points:
        acc = await ledger.accrue(pool, msisdn, points, key=f"setup-accrue-{msisdn}-{points}")
        assert acc.ok, acc


async def available(pool: Any, msisdn: str) -> int:
    out = await ledger.balance(pool, msisdn)
    assert out.ok, out
    return int(out.data["available"])


async def assert_sound(pool: Any) -> None:
    violations = await ledger.check(pool)
    assert violations == [], violations


async def count_rows(pool: Any, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


# -- a PostgreSQL server the tests may stop or freeze ---------------------------


def postgres_pid(servers: EmbeddedServers) -> int:
    assert servers.pids, "the test's PostgreSQL is not running"
    return servers.pids[0]


def postgres_processes(servers: EmbeddedServers) -> list[int]:
    """The postmaster and every backend it forked (all of them must freeze)."""
    pid = postgres_pid(servers)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
