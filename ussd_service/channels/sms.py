"""SMS on short number 4555, as an SMS gateway's HTTP service delivers it.

The gateway POSTs a form ``from, to, text[, id]`` for each inbound message
and sends the response body back to the subscriber as the answer SMS
(``text/plain``). ``id`` is the gateway's message id: stable when the gateway
redelivers the same message, so the service can answer it exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ussd_service.channels.forms import read_form, require
from ussd_service.hop import MalformedRequestError, normalise_msisdn

PATH = "/sms/inbound"
MAX_NUMBER_FIELD = 32
# A long SMS arrives as one text of up to a few concatenated parts.
MAX_SMS_TEXT = 1600
# Gateway message ids are short; bounded so that ledger keys derived from them fit.
MAX_MESSAGE_ID = 128
# Line breaks and tabs are ordinary in typed SMS; they separate words like spaces.
_WHITESPACE_CONTROLS = str.maketrans({"\r": " ", "\n": " ", "\t": " ", "\v": " ", "\f": " "})


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One SMS from a subscriber: ``msisdn`` in E.164, ``text`` with line breaks as spaces."""

    msisdn: str
    to: str
    text: str
    message_id: str | None


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
    return web.Response(text=reply, content_type="text/plain", charset="utf-8")
