"""USSD in Hubtel's convention (Ghana): one JSON object per message, JSON back.

Request ``{Type, Message, SessionId, Mobile, ServiceCode, Operator, Sequence?,
ClientState?}``. ``Type`` is ``Initiation`` (the subscriber dialled; ``Message``
holds the dialled string, so ``*111*455*1#`` is a shortcut), ``Response``
(``Message`` holds only the latest input), ``Release`` or ``Timeout`` (the
session is over). Hubtel's older USSD API capitalises the types and its
Programmable Services API writes them in lower case, so they are matched
without regard to case. ``Mobile`` is international without ``+``
(``233244567890``). Reply ``{Type: Response|Release, Message, ClientState?}``:
``Response`` keeps the session open, ``Release`` ends it.

Hop ids: Hubtel gives none, so one is derived that a retried request repeats
and that no other message of the session shares:

1. ``Sequence`` (Hubtel numbers the messages of a session) -> ``q<Sequence>``;
2. else ``ClientState``: Hubtel echoes the value of the previous reply, and
   every continuing reply carries the session's hop counter there (as the
   Twilio dialect puts it in the action URL) -> ``c<counter>:<type>``;
3. else an ``Initiation`` is ``begin`` (a repeated begin replays the last
   reply) and a ``Response`` has no id: it always steps. The text of the
   message cannot stand in for an id: pressing ``1`` on two screens in a row
   would look like a retry and the second press would be lost.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ussd_service.channels.dialect import (
    JSON,
    STR,
    Dialect,
    GatewayRequest,
    Reading,
    Route,
    gateway_operation,
    json_body,
)
from ussd_service.channels.forms import (
    read_json_object,
    require,
    service_code,
    session_id,
    ussd_text,
)
from ussd_service.hop import (
    Answer,
    Hop,
    HopKind,
    MalformedRequestError,
    normalise_msisdn,
    shortcut_inputs,
)

PATH = "/ussd/hubtel"
GATEWAY = "hubtel"
MAX_NUMBER_FIELD = 32
MAX_SERVICE_CODE = 64
MAX_OPERATOR = 64
# Our own ClientState is a hop counter; anything longer is not ours.
MAX_CLIENT_STATE = 64
# Sequence numbers the messages of one session: small, but bounded so the id stays short.
MAX_SEQUENCE_DIGITS = 9
_TYPES = {
    "initiation": HopKind.BEGIN,
    "response": HopKind.INPUT,
    "release": HopKind.ABORT,
    "timeout": HopKind.ABORT,
}
TYPE_NAMES = ("Initiation", "Response", "Release", "Timeout")


def _sequence(body: dict[str, Any]) -> int | None:
    """``Sequence``: a number (older API) or a string of digits (Programmable Services)."""
    raw = body.get("Sequence")
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw) if len(raw) <= MAX_SEQUENCE_DIGITS else -1
    # bool is an int in Python, never a sequence number in JSON.
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10**MAX_SEQUENCE_DIGITS:
        raise MalformedRequestError("field Sequence must be a small whole number")
    return raw


def _client_state(body: dict[str, Any]) -> str | None:
    """The hop counter our previous reply left in ``ClientState`` (None when absent or foreign)."""
    if body.get("ClientState") is None:
        return None
    state = require(body, "ClientState", max_len=MAX_CLIENT_STATE, allow_empty=True)
    return state if state.isascii() and state.isdigit() else None


def _kind(body: dict[str, Any]) -> tuple[HopKind, str]:
    raw = body.get("Type")
    name = raw.lower() if isinstance(raw, str) else ""
    kind = _TYPES.get(name)
    if kind is None:
        raise MalformedRequestError("field Type must be one of " + ", ".join(TYPE_NAMES))
    return kind, name


def _hop_id(kind: HopKind, type_name: str, sequence: int | None, state: str | None) -> str:
    """An id stable across Hubtel's retries of one message (see the module docstring)."""
    if kind is HopKind.ABORT:
        return type_name  # an ABORT is never replayed; the id only labels it
    if sequence is not None:
        return f"q{sequence}"
    if state is not None:
        return f"c{state}:{type_name}"
    return "begin" if kind is HopKind.BEGIN else ""


async def parse(request: web.Request) -> Hop:
    """The hop in a Hubtel request (raises MalformedRequestError)."""
    body = await read_json_object(request)
    kind, type_name = _kind(body)
    sid = session_id(body, "SessionId")
    msisdn = normalise_msisdn(require(body, "Mobile", max_len=MAX_NUMBER_FIELD), "Mobile")
    require(body, "ServiceCode", max_len=MAX_SERVICE_CODE)
    if body.get("Operator") is not None:
        require(body, "Operator", max_len=MAX_OPERATOR, allow_empty=True)
    # Initiation and Response always carry Message; an ending may leave it out.
    message = ussd_text(body, "Message", required=kind is not HopKind.ABORT)
    sequence = _sequence(body)
    state = _client_state(body)
    shortcut: tuple[str, ...] = ()
    if kind is HopKind.BEGIN:
        shortcut = shortcut_inputs(message, service_code(request)) if message else ()
    return Hop(
        channel="ussd",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=kind,
        hop_id=_hop_id(kind, type_name, sequence, state),
        input=message if kind is HopKind.INPUT else "",
        shortcut=shortcut,
    )


# Cyrillic screens as UTF-8, not \u escapes: a third of the bytes, readable in logs.
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def render(answer: Answer, _message: object = None) -> web.Response:
    """``{Type, Message}``; a continuing reply keeps the hop counter in ``ClientState``."""
    screen = answer.screen
    if screen.final:
        return web.json_response({"Type": "Release", "Message": screen.text}, dumps=_dumps)
    reply = {"Type": "Response", "Message": screen.text, "ClientState": str(answer.seq)}
    return web.json_response(reply, dumps=_dumps)


@dataclass
class Session:
    """Hubtel's side: numbered messages, the previous reply's ClientState echoed back."""

    msisdn: str
    session_id: str
    service: str
    sequence: int = 0
    client_state: str = ""
    operator: str = "mtn"

    def _request(self, type_name: str, message: str) -> GatewayRequest:
        self.sequence += 1
        body = {
            "Type": type_name,
            "Message": message,
            "SessionId": self.session_id,
            # Hubtel sends numbers in international form without the "+".
            "Mobile": self.msisdn.removeprefix("+"),
            "ServiceCode": self.service.strip("*#"),
            "Operator": self.operator,
            "Sequence": self.sequence,
            "ClientState": self.client_state,
        }
        return GatewayRequest("POST", PATH, json.dumps(body).encode(), JSON)

    def begin(self) -> GatewayRequest:
        """The subscriber dialled ``service`` (a shortcut string works too)."""
        self.sequence = 0
        self.client_state = ""
        return self._request("Initiation", self.service)

    def answer(self, keys: str) -> GatewayRequest:
        """The subscriber's answer to the current screen."""
        return self._request("Response", keys)

    def silence(self) -> GatewayRequest:
        """No answer in time: Hubtel ends the session with a Timeout."""
        return self._request("Timeout", "")

    def end(self) -> GatewayRequest:
        """The subscriber cancelled the session."""
        return self._request("Release", "")

    def read(self, status: int, body: str) -> Reading:
        """``{Type, Message, ClientState?}``; anything else is final (an error)."""
        try:
            reply = json.loads(body) if status == 200 else None
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("Type") not in ("Response", "Release"):
            return Reading(status, body.strip(), True, raw=body)
        state = reply.get("ClientState")
        self.client_state = state if isinstance(state, str) else ""
        return Reading(status, str(reply.get("Message", "")), reply["Type"] == "Release", raw=body)


_REPLY_SCHEMA = {
    "type": "object",
    "properties": {
        "Type": {"type": "string", "enum": ["Response", "Release"]},
        "Message": STR,
        "ClientState": {
            "type": "string",
            "description": "the session's hop counter; Hubtel echoes it in the next request",
        },
    },
    "required": ["Type", "Message"],
}

DIALECT = Dialect(
    name=GATEWAY,
    channel="ussd",
    summary="Hubtel USSD (JSON in, JSON out)",
    session=Session,
    routes=(
        Route(
            "POST",
            PATH,
            "ussd_hubtel",
            parse,
            render,
            gateway_operation(
                "USSD hop in Hubtel's convention.",
                description="`Initiation` opens the session (`Message` is the dialled "
                "string; `*111*455*1#` is a shortcut), `Response` carries the latest input, "
                "`Release` and `Timeout` end the session (`Type` in any case). A retried "
                "request (same `Sequence`, or same echoed `ClientState`) is answered from "
                "the stored reply.",
                request_body=json_body(
                    {
                        "Type": {"type": "string", "enum": list(TYPE_NAMES)},
                        "Message": {"type": "string", "maxLength": 182},
                        "SessionId": STR,
                        "Mobile": {
                            "type": "string",
                            "description": "the subscriber's number, usually without `+`",
                        },
                        "ServiceCode": STR,
                        "Operator": STR,
                        "Sequence": {
                            "type": ["integer", "string"],
                            "description": "position of the message in the session",
                        },
                        "ClientState": {
                            "type": "string",
                            "description": "echo of the previous reply's ClientState",
                        },
                    },
                    ["Type", "SessionId", "Mobile", "ServiceCode"],
                ),
                responses={
                    "200": {
                        "description": "the screen: `Response` continues, `Release` ends",
                        "content": {JSON: {"schema": _REPLY_SCHEMA}},
                    }
                },
            ),
        ),
    ),
)
