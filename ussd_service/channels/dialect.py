"""What a gateway dialect is: the one unit that adding a gateway touches.

A dialect names its gateway and channel, lists its HTTP routes (each with how
it parses a request into the core's message, how it renders the core's answer,
and its OpenAPI description) and carries a client half: the gateway's side of
a session, which builds the requests that gateway would send and reads the
replies back. The service registers every route with one generic handler
(``ussd_service.gateways``); the simulator and the tests drive the client half.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web

from ussd_service.delivery_reports import DeliveryReport
from ussd_service.hop import Hop
from ussd_service.sms_desk import InboundSms

ChannelName = Literal["ussd", "ivr", "sms"]
#: What a route's ``parse`` hands the core that answers it.
Message = Hop | InboundSms | DeliveryReport


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint of a dialect.

    ``parse`` raises ``MalformedRequestError`` (a 400 with its message) or
    returns the core's message (a ``Hop`` goes to the menu dialogue, an
    ``InboundSms`` to the SMS desk, a ``DeliveryReport`` to the outbox), or
    None when the request needs no answer from the core (a call-progress
    callback). ``render(answer, message)`` turns the core's answer (a
    ``hop.Answer``, the SMS reply text, a report's result; None when ``parse``
    gave None) into the gateway's reply; the message is there for dialects
    whose reply repeats what the request said (a VoiceXML document declares
    the call's ids). ``verify`` checks a dialect's own signature
    before parsing; the shared gateway secret is checked for every route.
    """

    method: str
    path: str
    name: str
    parse: Callable[[web.Request], Awaitable[Message | None]]
    render: Callable[[Any, Any], web.StreamResponse]
    openapi: Mapping[str, Any]
    verify: Callable[[web.Request], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """A request as the gateway would send it (path relative to the service root)."""

    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a reply says to the subscriber, whatever the dialect.

    ``text`` is the USSD page, the IVR prompts joined by line breaks, or the
    SMS reply. IVR replies also give the prompts one by one, the audio files,
    the transfer destination of a handoff and how the next keys are collected.
    """

    status: int
    text: str
    final: bool
    raw: str = ""
    prompts: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    transfer: str | None = None
    num_digits: int | None = None
    finish_on_key: str = ""
    timeout: int | None = None


class GatewaySession(Protocol):
    """The gateway's side of one USSD session or voice call (a client half).

    ``begin`` opens it, ``answer`` sends the subscriber's keys, ``silence``
    reports that nothing was pressed (None when the gateway never does),
    ``end`` reports that the subscriber hung up (None when the gateway never
    says). ``read`` reads the service's reply and keeps what the next request
    needs (an accumulated path, an action URL).
    """

    def begin(self) -> GatewayRequest: ...

    def answer(self, keys: str) -> GatewayRequest: ...

    def silence(self) -> GatewayRequest | None: ...

    def end(self) -> GatewayRequest | None: ...

    def read(self, status: int, body: str) -> Reading: ...


class SmsGatewayClient(Protocol):
    """The SMS gateway's side: delivers a subscriber's message, reads the answer."""

    def message(self, text: str, message_id: str) -> GatewayRequest: ...

    def read(self, status: int, body: str) -> Reading: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """A gateway convention: its routes and its client half.

    ``session`` opens the client half of one session: ``(msisdn, session_id,
    service)`` where ``service`` is the USSD code or the number called; the SMS
    dialect has ``sms_client`` ``(msisdn, short_number)`` instead.
    """

    name: str
    channel: ChannelName
    routes: tuple[Route, ...]
    session: Callable[[str, str, str], GatewaySession] | None = None
    sms_client: Callable[[str, str], SmsGatewayClient] | None = None
    summary: str = ""


# -- OpenAPI pieces every dialect uses ------------------------------------------

STR: Mapping[str, Any] = {"type": "string"}
TEXT_PLAIN = "text/plain"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
GATEWAY_SECURITY: list[dict[str, list[str]]] = [{"gatewayToken": []}, {"gatewayBasic": []}]
AUTH_ERRORS: Mapping[str, Any] = {
    "401": {"description": "missing or wrong credentials"},
    "403": {"description": "no credentials configured and the client is not on loopback"},
}
TEXT_400: Mapping[str, Any] = {
    "description": "malformed request; the body says why in one line",
    "content": {TEXT_PLAIN: {"schema": STR}},
}
TOO_LARGE: Mapping[str, Any] = {"description": "body too large"}


def form_body(properties: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAPI request body of a URL-encoded form."""
    schema = {"type": "object", "properties": dict(properties), "required": required}
    return {"required": True, "content": {FORM: {"schema": schema}}}


def json_body(properties: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAPI request body of a JSON object."""
    schema = {"type": "object", "properties": dict(properties), "required": required}
    return {"required": True, "content": {JSON: {"schema": schema}}}


def gateway_operation(
    summary: str,
    *,
    responses: Mapping[str, Any],
    request_body: Mapping[str, Any] | None = None,
    parameters: list[Mapping[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """An OpenAPI operation of a gateway endpoint: the shared tags, security and errors."""
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["gateways"],
        "security": GATEWAY_SECURITY,
        "responses": {**responses, "400": TEXT_400, "413": TOO_LARGE, **AUTH_ERRORS},
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = dict(request_body)
    return operation
