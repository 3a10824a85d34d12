"""USSD in the Africa's Talking convention.

Form fields ``sessionId, serviceCode, phoneNumber, networkCode, text``; ``text``
holds every input of the session so far joined by ``*`` (empty on the first
request). The reply is ``text/plain`` starting ``CON `` (the session goes on)
or ``END `` (it ends).
"""

from __future__ import annotations

from aiohttp import web

from menus.screen import Screen
from ussd_service.channels.forms import read_form, require, session_id, ussd_text
from ussd_service.hop import Hop, HopKind, normalise_msisdn, shortcut_inputs

PATH = "/ussd/africastalking"
GATEWAY = "africastalking"
MAX_NUMBER_FIELD = 32
MAX_SERVICE_CODE = 64


async def parse(request: web.Request, base_code: str) -> Hop:
    """The hop in an Africa's Talking request (raises MalformedRequestError)."""
    form = await read_form(request)
    sid = session_id(form, "sessionId")
    msisdn = normalise_msisdn(require(form, "phoneNumber", max_len=MAX_NUMBER_FIELD), "phoneNumber")
    service_code = require(form, "serviceCode", max_len=MAX_SERVICE_CODE)
    text = ussd_text(form, "text")
    # The accumulated text identifies the hop: a retry repeats it exactly.
    return Hop(
        channel="ussd",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=HopKind.INPUT if text else HopKind.BEGIN,
        hop_id="p:" + text,
        path=text,
        shortcut=shortcut_inputs(service_code, base_code),
        # This callback never hears that a session ended: silent drops.
        reports_drops=False,
    )


def render(screen: Screen) -> web.Response:
    """``CON``/``END`` text for the screen."""
    prefix = "END " if screen.final else "CON "
    return web.Response(text=prefix + screen.text, content_type="text/plain", charset="utf-8")
