"""USSD in the Africa's Talking convention.

Form fields ``sessionId, serviceCode, phoneNumber, networkCode, text``; ``text``
holds every input of the session so far joined by ``*`` (empty on the first
request). The reply is ``text/plain`` starting ``CON `` (the session goes on)
or ``END `` (it ends). The gateway never reports that a session ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from ussd_service.channels.dialect import (
    FORM,
    STR,
    TEXT_PLAIN,
    Dialect,
    GatewayRequest,
    Reading,
    Route,
    form_body,
    gateway_operation,
)
from ussd_service.channels.forms import read_form, require, service_code, session_id, ussd_text
from ussd_service.hop import Answer, Hop, HopKind, normalise_msisdn, shortcut_inputs

PATH = "/ussd/africastalking"
GATEWAY = "africastalking"
MAX_NUMBER_FIELD = 32
MAX_SERVICE_CODE = 64
# The accumulated text is the hop's identity (a retry repeats it exactly);
# the prefix keeps the begin hop's empty text a non-empty id.
_HOP_ID_PREFIX = "p:"


def input_after(text: str) -> Callable[[str | None], str]:
    """How to find the new input in ``text``, given the hop id the session answered last."""

    def derive(previous_hop_id: str | None) -> str:
        previous = ""
        if previous_hop_id and previous_hop_id.startswith(_HOP_ID_PREFIX):
            previous = previous_hop_id[len(_HOP_ID_PREFIX) :]
        if not previous:
            return text
        if text.startswith(previous + "*"):
            return text[len(previous) + 1 :]
        return text.rsplit("*", 1)[-1]

    return derive


async def parse(request: web.Request) -> Hop:
    """The hop in an Africa's Talking request (raises MalformedRequestError)."""
    form = await read_form(request)
    sid = session_id(form, "sessionId")
    msisdn = normalise_msisdn(require(form, "phoneNumber", max_len=MAX_NUMBER_FIELD), "phoneNumber")
    dialled = require(form, "serviceCode", max_len=MAX_SERVICE_CODE)
    text = ussd_text(form, "text")
    return Hop(
        channel="ussd",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=HopKind.INPUT if text else HopKind.BEGIN,
        hop_id=_HOP_ID_PREFIX + text,
        input=text,
        input_after=input_after(text),
        shortcut=shortcut_inputs(dialled, service_code(request)),
        # This callback never hears that a session ended: silent drops.
        reports_drops=False,
    )


def render(answer: Answer, _message: object = None) -> web.Response:
    """``CON``/``END`` text for the screen."""
    screen = answer.screen
    prefix = "END " if screen.final else "CON "
    return web.Response(text=prefix + screen.text, content_type=TEXT_PLAIN, charset="utf-8")


@dataclass
class Session:
    """The gateway's side: it resends every input so far with each request."""

    msisdn: str
    session_id: str
    service: str
    inputs: list[str] = field(default_factory=list)

    def _request(self) -> GatewayRequest:
        form = {
            "sessionId": self.session_id,
            "serviceCode": self.service,
            "phoneNumber": self.msisdn,
            "networkCode": "25001",
            "text": "*".join(self.inputs),
        }
        return GatewayRequest("POST", PATH, urlencode(form).encode(), FORM)

    def begin(self) -> GatewayRequest:
        """The first request of the session: empty text."""
        self.inputs = []
        return self._request()

    def answer(self, keys: str) -> GatewayRequest:
        """The path with ``keys`` appended."""
        self.inputs.append(keys)
        return self._request()

    def silence(self) -> None:
        """The gateway has no timeout callback."""

    def end(self) -> None:
        """The gateway never reports a drop."""

    def read(self, status: int, body: str) -> Reading:
        """``CON``/``END`` text; anything else is final (an error)."""
        head, _, text = body.partition(" ")
        if status != 200 or head not in ("CON", "END"):
            return Reading(status, body.strip(), True, raw=body)
        return Reading(status, text, head == "END", raw=body)


DIALECT = Dialect(
    name=GATEWAY,
    channel="ussd",
    summary="Africa's Talking USSD callback",
    session=Session,
    routes=(
        Route(
            "POST",
            PATH,
            "ussd_africastalking",
            parse,
            render,
            gateway_operation(
                "USSD hop in the Africa's Talking convention.",
                description="`text` holds every input so far joined by `*` (empty at the "
                "start); a repeated request is answered from the stored reply.",
                request_body=form_body(
                    {
                        "sessionId": STR,
                        "serviceCode": STR,
                        "phoneNumber": STR,
                        "networkCode": STR,
                        "text": {"type": "string", "maxLength": 182},
                    },
                    ["sessionId", "serviceCode", "phoneNumber", "text"],
                ),
                responses={
                    "200": {
                        "description": "`CON <screen>` (continue) or `END <screen>` (final)",
                        "content": {TEXT_PLAIN: {"schema": STR}},
                    }
                },
            ),
        ),
    ),
)
