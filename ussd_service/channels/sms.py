# The OpenAPI description quotes the Cyrillic command words.
# ruff: noqa: RUF001
"""SMS on short number 4555, as an SMS gateway's HTTP service delivers it.

The gateway POSTs a form ``from, to, text[, id]`` for each inbound message
and sends the response body back to the subscriber as the answer SMS
(``text/plain``). ``id`` is the gateway's message id: stable when the gateway
redelivers the same message, so the desk can answer it exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from ussd_service.channels.forms import read_form, require
from ussd_service.hop import MalformedRequestError, normalise_msisdn
from ussd_service.sms_desk import InboundSms

PATH = "/sms/inbound"
GATEWAY = "sms"
MAX_NUMBER_FIELD = 32
# A long SMS arrives as one text of up to a few concatenated parts.
MAX_SMS_TEXT = 1600
# Gateway message ids are short; bounded so that ledger keys derived from them fit.
MAX_MESSAGE_ID = 128
# Line breaks and tabs are ordinary in typed SMS; they separate words like spaces.
_WHITESPACE_CONTROLS = str.maketrans({"\r": " ", "\n": " ", "\t": " ", "\v": " ", "\f": " "})


async def parse(request: web.Request) -> InboundSms:
    """The SMS in the gateway's form (raises MalformedRequestError)."""
    form = await read_form(request)
    msisdn = normalise_msisdn(require(form, "from", max_len=MAX_NUMBER_FIELD), "from")
    to = require(form, "to", max_len=MAX_NUMBER_FIELD)
    if "text" in form:
        form["text"] = form["text"].translate(_WHITESPACE_CONTROLS)
    text = require(form, "text", max_len=MAX_SMS_TEXT, allow_empty=True)
    message_id = None
    if form.get("id"):
        message_id = require(form, "id", max_len=MAX_MESSAGE_ID)
        if any(ch.isspace() for ch in message_id):
            raise MalformedRequestError("field id contains spaces")
    return InboundSms(msisdn=msisdn, to=to, text=text, message_id=message_id)


def render(reply: str) -> web.Response:
    """The answer SMS as the response body."""
    return web.Response(text=reply, content_type=TEXT_PLAIN, charset="utf-8")


@dataclass
class Client:
    """The SMS gateway's side: one POST per message from the subscriber."""

    msisdn: str
    short_number: str

    def message(self, text: str, message_id: str) -> GatewayRequest:
        """The gateway delivering ``text`` (its id stays the same on redelivery)."""
        form = {"from": self.msisdn, "to": self.short_number, "text": text, "id": message_id}
        return GatewayRequest("POST", PATH, urlencode(form).encode(), FORM)

    def read(self, status: int, body: str) -> Reading:
        """The answer SMS is the body."""
        return Reading(status, body.strip(), True, raw=body)


DIALECT = Dialect(
    name=GATEWAY,
    channel="sms",
    summary="SMS to 4555 through the SMS gateway's HTTP service",
    sms_client=Client,
    routes=(
        Route(
            "POST",
            PATH,
            "sms_inbound",
            parse,
            render,
            gateway_operation(
                "An SMS to 4555, as an SMS gateway's HTTP service delivers it.",
                description="Commands (any case, Latin or Cyrillic): `DAR|GIFT|ДАР|ПОДАРОК "
                "<number> <points>` gifts points; `DAR` alone accepts the oldest pending gift; "
                "`NET|NO|НЕТ` declines it; `BALANCE|БАЛАНС`; anything else gets the help "
                "text. The same `id` (the gateway's message id) is answered once: a "
                "redelivery gets the same reply and moves no points again.",
                request_body=form_body(
                    {
                        "from": {"type": "string", "description": "the sender's number"},
                        "to": {"type": "string", "description": "the short number"},
                        "text": {"type": "string", "maxLength": MAX_SMS_TEXT},
                        "id": {
                            "type": "string",
                            "maxLength": MAX_MESSAGE_ID,
                            "description": "gateway message id, stable across "
                            "redeliveries: exactly-once answers",
                        },
                    },
                    ["from", "to", "text"],
                ),
                responses={
                    "200": {
                        "description": "the answer SMS",
                        "content": {TEXT_PLAIN: {"schema": STR}},
                    }
                },
            ),
        ),
    ),
)
