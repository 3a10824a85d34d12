"""One phone for every gateway dialect, driven by the dialect's client half.

The dialect builds each request its gateway would send (``GatewaySession`` for
a USSD session or a call, ``SmsGatewayClient`` for texts) and reads the
service's reply; the phone only carries the request over HTTP and keeps the
screen. A new dialect in ``ussd_service/channels/`` works here unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp

from ussd_service.channels import dialect as dialect_named
from ussd_service.channels.dialect import (
    Dialect,
    GatewayRequest,
    GatewaySession,
    Reading,
    SmsGatewayClient,
)

# Each channel's default dialect and number (CONVENTIONS.md 9).
DEFAULT_DIALECTS: Mapping[str, str] = {"ussd": "africastalking", "ivr": "twilio", "sms": "sms"}
DEFAULT_USSD_CODE = "*111*455#"
DEFAULT_IVR_NUMBER = "0890"
SMS_SHORT_NUMBER = "4555"
DEFAULT_NUMBERS: Mapping[str, str] = {
    "ussd": DEFAULT_USSD_CODE,
    "ivr": DEFAULT_IVR_NUMBER,
    "sms": SMS_SHORT_NUMBER,
}
GATEWAY_TOKEN_HEADER = "X-Gateway-Token"  # noqa: S105 - a header name
OUTBOX_PATH = "/v1/outbox"
HANDOFFS_PATH = "/v1/handoffs"
# A gateway answers a hop with 200; a call-progress report may say 204.
HOP_OK = 200
REPORT_OK_BELOW = 300


class PhoneError(RuntimeError):
    """The service answered something a gateway would not accept, or the phone was misused."""


def default_dialect(channel: str) -> Dialect:
    """The dialect a phone of ``channel`` speaks unless told otherwise."""
    return dialect_named(DEFAULT_DIALECTS[channel])


@dataclass(frozen=True)
class Reply:
    """One answer of the service as the phone shows it, whatever the dialect.

    ``text`` is the USSD page, the IVR prompts one per line, or the SMS reply.
    ``operator`` is set when the IVR transfers the call to a person.
    """

    channel: str
    text: str
    final: bool
    operator: str | None = None
    prompts: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    num_digits: int | None = None
    finish_on_key: str = ""
    timeout: int | None = None
    raw: str = ""

    @classmethod
    def of(cls, channel: str, reading: Reading) -> Reply:
        """The reply a dialect's ``Reading`` describes."""
        return cls(
            channel=channel,
            text=reading.text,
            final=reading.final,
            operator=reading.transfer,
            prompts=reading.prompts,
            audio=reading.audio,
            num_digits=reading.num_digits,
            finish_on_key=reading.finish_on_key,
            timeout=reading.timeout,
            raw=reading.raw,
        )

    def expects(self) -> str:
        """What the IVR waits for, in words (``1 key``, ``keys, then #``)."""
        if self.final:
            return "nothing (the call ends)"
        if self.num_digits:
            return f"{self.num_digits} key" + ("s" if self.num_digits > 1 else "")
        if self.finish_on_key:
            return f"keys, then {self.finish_on_key}"
        return "keys"

    def collected(self, keys: str) -> str:
        """The keys the gateway passes on: ``num_digits`` of them, or up to ``finish_on_key``."""
        if self.num_digits:
            return keys[: self.num_digits]
        if self.finish_on_key and self.finish_on_key in keys:
            return keys.split(self.finish_on_key, 1)[0]
        return keys

    @property
    def collects_keys(self) -> bool:
        """True when the reply gathers keys the way a voice platform does."""
        return not self.final and bool(self.num_digits or self.finish_on_key)


@dataclass
class ServiceClient:
    """Where and how phones reach the service: HTTP, with the credentials configured."""

    http: aiohttp.ClientSession
    base_url: str
    gateway_secret: str | None = None
    api_token: str | None = None

    def url(self, path: str) -> str:
        """An absolute URL of the service."""
        return urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def gateway_headers(self) -> dict[str, str]:
        """Headers a gateway presents (its shared secret, when configured)."""
        return {GATEWAY_TOKEN_HEADER: self.gateway_secret} if self.gateway_secret else {}

    def api_headers(self) -> dict[str, str]:
        """Headers of an operator API call (bearer token, when configured)."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    async def deliver(self, request: GatewayRequest) -> tuple[int, str]:
        """Send a gateway's request; the status and the body."""
        headers = {**self.gateway_headers(), **request.headers}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        async with self.http.request(
            request.method,
            self.url(request.path),
            params=dict(request.query) or None,
            data=request.body or None,
            headers=headers,
        ) as response:
            return response.status, await response.text()

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET an operator API resource (raises PhoneError unless 200)."""
        async with self.http.get(
            self.url(path), params=params, headers=self.api_headers()
        ) as response:
            if response.status != HOP_OK:
                raise PhoneError(f"GET {path}: HTTP {response.status}: {await response.text()}")
            return await response.json(content_type=None)

    async def waiting_handoffs(self, msisdn: str) -> list[dict[str, Any]]:
        """Handoffs waiting for an operator for ``msisdn``."""
        body = await self.get_json(HANDOFFS_PATH, {"status": "waiting"})
        items = body.get("items", []) if isinstance(body, dict) else []
        return [item for item in items if item.get("msisdn") == msisdn]


def notification_text(item: Mapping[str, Any]) -> str:
    """What an outbox item says: the text sent, or its event and data while pending."""
    delivery = item.get("delivery")
    if isinstance(delivery, Mapping) and delivery.get("text"):
        return str(delivery["text"])
    payload = item.get("payload") or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if k != "msisdn")
    return f"{item.get('event', '?')} ({item.get('status', 'pending')}): {shown}"


def _new_id(prefix: str, size: int) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:size]}"


@dataclass
class Phone:
    """A subscriber's phone speaking ``dialect`` to the service.

    USSD and voice: ``dial`` opens a session on ``number`` (the USSD code or
    the line called), ``send`` answers the screen, ``wait`` lets the input
    time out, ``hang_up`` leaves. SMS: ``send`` texts ``number``. Any channel:
    ``notifications`` reads what the outbox holds for this number.
    """

    service: ServiceClient
    dialect: Dialect
    msisdn: str
    number: str = ""
    last: Reply | None = field(default=None, init=False)
    seen_notifications: set[Any] = field(default_factory=set, init=False)
    _session: GatewaySession | None = field(default=None, init=False, repr=False)
    _sms: SmsGatewayClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.number = self.number or DEFAULT_NUMBERS[self.channel]
        if self.dialect.session is None and self.dialect.sms_client is None:
            raise PhoneError(f"the {self.dialect.name} dialect has no client half")

    @property
    def channel(self) -> str:
        """``ussd``, ``ivr`` or ``sms``: the dialect's channel."""
        return self.dialect.channel

    @property
    def in_session(self) -> bool:
        """True while a session is open (the last screen asked for a reply)."""
        return self._session is not None and self.last is not None and not self.last.final

    async def dial(self, number: str | None = None) -> Reply:
        """Open a session on ``number`` (a USSD shortcut string works too)."""
        if self.dialect.session is None:
            raise PhoneError(f"{self.dialect.name} phones send texts, they do not dial")
        self.number = number or self.number
        self._session = self.dialect.session(self.msisdn, _new_id("sim", 16), self.number)
        return await self._hop(self._session.begin())

    async def send(self, text: str) -> Reply:
        """Answer the current screen, or (SMS) send one text."""
        if self.dialect.sms_client is not None:
            return await self._text(text)
        last = self.last
        if self._session is None or last is None or last.final:
            raise PhoneError("no session waiting for input: dial first")
        keys = last.collected(text)
        if not keys and last.collects_keys:
            # Only the finishing key pressed: the voice platform hears silence.
            return await self.wait()
        return await self._hop(self._session.answer(keys))

    async def wait(self) -> Reply:
        """Press nothing until the input times out."""
        if not self.in_session:
            raise PhoneError("no session waiting for input: dial first")
        assert self._session is not None
        request = self._session.silence()
        if request is None:
            raise PhoneError(f"the {self.dialect.name} gateway never reports silence")
        return await self._hop(request)

    async def hang_up(self) -> Reply | None:
        """Leave an open session; the gateway says so when its convention does."""
        session, self._session = self._session, None
        if session is None or self.last is None or self.last.final:
            return None
        request = session.end()
        if request is None:
            return None
        status, body = await self.service.deliver(request)
        if status >= REPORT_OK_BELOW:
            raise PhoneError(f"{request.method} {request.path}: HTTP {status}: {body.strip()}")
        if status != HOP_OK:
            return None
        self.last = Reply.of(self.channel, session.read(status, body))
        return self.last

    async def _hop(self, request: GatewayRequest) -> Reply:
        assert self._session is not None
        status, body = await self.service.deliver(request)
        if status != HOP_OK:
            raise PhoneError(f"{request.method} {request.path}: HTTP {status}: {body.strip()}")
        self.last = Reply.of(self.channel, self._session.read(status, body))
        if self.last.final:
            self._session = None
        return self.last

    async def _text(self, text: str) -> Reply:
        if self._sms is None:
            assert self.dialect.sms_client is not None
            self._sms = self.dialect.sms_client(self.msisdn, self.number)
        request = self._sms.message(text, _new_id("sim", 12))
        status, body = await self.service.deliver(request)
        if status != HOP_OK:
            raise PhoneError(f"{request.method} {request.path}: HTTP {status}: {body.strip()}")
        self.last = Reply.of(self.channel, self._sms.read(status, body))
        return self.last

    async def notifications(self, *, only_new: bool = True) -> list[str]:
        """Texts queued for this number in the outbox (``GET /v1/outbox``)."""
        return [text for _, text in await self.notification_items(only_new=only_new)]

    async def notification_items(self, *, only_new: bool = True) -> list[tuple[Any, str]]:
        """(id, text) of the outbox messages to this number."""
        body = await self.service.get_json(OUTBOX_PATH, {"msisdn": self.msisdn})
        items = body.get("items", []) if isinstance(body, dict) else body
        found: list[tuple[Any, str]] = []
        for item in items or []:
            if not isinstance(item, dict) or item.get("msisdn") not in (None, self.msisdn):
                continue
            ident = item.get("id")
            if only_new and ident in self.seen_notifications:
                continue
            self.seen_notifications.add(ident)
            found.append((ident, notification_text(item)))
        return found
