"""USSD in the service's own JSON convention.

Request ``{session_id, msisdn, service_code, input, event: begin|input|abort,
hop_id?}``; reply ``{action: continue|end, text}``. A gateway that sends
``hop_id`` gets exactly-once hops: a retry with the same id is answered from
the stored reply. Without it, only a repeated ``begin`` is recognised.
"""

from __future__ import annotations

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
    hop_id,
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

PATH = "/ussd"
GATEWAY = "native"
MAX_NUMBER_FIELD = 32
MAX_SERVICE_CODE = 64
_EVENTS = {"begin": HopKind.BEGIN, "input": HopKind.INPUT, "abort": HopKind.ABORT}


async def parse(request: web.Request) -> Hop:
    """The hop in a native JSON request (an empty ``hop_id``: the gateway gave none)."""
    body = await read_json_object(request)
    event = body.get("event")
    if not isinstance(event, str) or event not in _EVENTS:
        raise MalformedRequestError("field event must be one of begin, input, abort")
    kind = _EVENTS[event]
    sid = session_id(body, "session_id")
    msisdn = normalise_msisdn(require(body, "msisdn", max_len=MAX_NUMBER_FIELD))
    dialled = ""
    if body.get("service_code") is not None:
        dialled = require(body, "service_code", max_len=MAX_SERVICE_CODE)
    text = ussd_text(body, "input", required=kind is HopKind.INPUT)
    given = hop_id(body, "hop_id")
    return Hop(
        channel="ussd",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=kind,
        # Without an id from the gateway, a begin is still recognisable when repeated.
        hop_id=given if given is not None else ("begin" if kind is HopKind.BEGIN else ""),
        input=text,
        shortcut=shortcut_inputs(dialled, service_code(request)) if kind is HopKind.BEGIN else (),
    )


def render(answer: Answer, _message: object = None) -> web.Response:
    """``{action, text}`` JSON for the screen."""
    screen = answer.screen
    action = "end" if screen.final else "continue"
    return web.json_response({"action": action, "text": screen.text})


@dataclass
class Session:
    """The gateway's side: one input per hop, numbered hop ids, an explicit abort."""

    msisdn: str
    session_id: str
    service: str
    hops: int = 0

    def _request(self, event: str, text: str | None = None) -> GatewayRequest:
        self.hops += 1
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "msisdn": self.msisdn,
            "service_code": self.service,
            "event": event,
            "hop_id": f"h{self.hops}",
        }
        if text is not None:
            body["input"] = text
        return GatewayRequest("POST", PATH, json.dumps(body).encode(), JSON)

    def begin(self) -> GatewayRequest:
        """The subscriber dialled."""
        self.hops = 0
        return self._request("begin")

    def answer(self, keys: str) -> GatewayRequest:
        """The subscriber answered the screen."""
        return self._request("input", keys)

    def silence(self) -> None:
        """USSD has no timeout hop: the gateway ends the session itself."""

    def end(self) -> GatewayRequest:
        """The subscriber left the session."""
        return self._request("abort")

    def read(self, status: int, body: str) -> Reading:
        """``{action, text}``; anything else is final (an error)."""
        try:
            answer = json.loads(body) if status == 200 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return Reading(status, body.strip(), True, raw=body)
        return Reading(status, str(answer.get("text", "")), answer.get("action") == "end", raw=body)


DIALECT = Dialect(
    name=GATEWAY,
    channel="ussd",
    summary="the service's own JSON USSD convention",
    session=Session,
    routes=(
        Route(
            "POST",
            PATH,
            "ussd_native",
            parse,
            render,
            gateway_operation(
                "USSD hop in the native JSON convention.",
                request_body=json_body(
                    {
                        "session_id": STR,
                        "msisdn": STR,
                        "service_code": STR,
                        "input": {"type": "string", "maxLength": 182},
                        "event": {"type": "string", "enum": ["begin", "input", "abort"]},
                        "hop_id": {
                            "type": "string",
                            "description": "stable across retries: exactly-once hops",
                        },
                    },
                    ["session_id", "msisdn", "event"],
                ),
                responses={
                    "200": {
                        "description": "the screen",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "action": {"type": "string", "enum": ["continue", "end"]},
                                        "text": STR,
                                    },
                                }
                            }
                        },
                    }
                },
            ),
        ),
    ),
)
