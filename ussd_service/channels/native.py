"""USSD in the service's own JSON convention.

Request ``{session_id, msisdn, service_code, input, event: begin|input|abort,
hop_id?}``; reply ``{action: continue|end, text}``. A gateway that sends
``hop_id`` gets exactly-once hops: a retry with the same id is answered from
the stored reply. Without it, only a repeated ``begin`` is recognised.
"""

from __future__ import annotations

from aiohttp import web

from menus.screen import Screen
from ussd_service.channels.forms import (
    hop_id,
    read_json_object,
    require,
    session_id,
    ussd_text,
)
from ussd_service.hop import Hop, HopKind, MalformedRequestError, normalise_msisdn, shortcut_inputs

PATH = "/ussd"
GATEWAY = "native"
MAX_NUMBER_FIELD = 32
MAX_SERVICE_CODE = 64
_EVENTS = {"begin": HopKind.BEGIN, "input": HopKind.INPUT, "abort": HopKind.ABORT}


async def parse(request: web.Request, base_code: str) -> Hop:
    """The hop in a native JSON request (an empty ``hop_id``: the gateway gave none)."""
    body = await read_json_object(request)
    event = body.get("event")
    if not isinstance(event, str) or event not in _EVENTS:
        raise MalformedRequestError("field event must be one of begin, input, abort")
    kind = _EVENTS[event]
    sid = session_id(body, "session_id")
    msisdn = normalise_msisdn(require(body, "msisdn", max_len=MAX_NUMBER_FIELD))
    service_code = ""
    if body.get("service_code") is not None:
        service_code = require(body, "service_code", max_len=MAX_SERVICE_CODE)
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
        shortcut=shortcut_inputs(service_code, base_code) if kind is HopKind.BEGIN else (),
    )


def render(screen: Screen) -> web.Response:
    """``{action, text}`` JSON for the screen."""
    action = "end" if screen.final else "continue"
    return web.json_response({"action": action, "text": screen.text})
