# The OpenAPI description quotes the Cyrillic command words.
# ruff: noqa: RUF001
"""SMS on short number 4555, in the conventions of Kannel's ``smsbox``.

Inbound (``/sms/inbound``), one message per request, three ways:

* ``GET`` — Kannel's ``sms-service`` ``get-url``: the query carries
  ``from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C``. The text is decoded
  from its bytes in ``charset`` (UTF-8 with ``mo-recode = true``; UTF-16BE
  when a UCS-2 message arrives without it).
* ``POST`` with a ``text/plain`` body — Kannel's ``post-url``: the body is
  the text in the charset of its ``Content-Type``; ``X-Kannel-From`` (with
  ``send-sender = true``) and ``X-Kannel-To`` name the numbers (or ``from`` /
  ``to`` in the query); no header carries the message id, so the post-url
  puts ``id=%I`` in its query.
* ``POST`` of a form ``from, to, text[, id]`` (other gateways).

The reply is the answer SMS: ``200`` with ``text/plain; charset=utf-8``
(Kannel uses a body only on 200/202, so every business answer is a 200) and
``X-Kannel-Coding: 2`` when the text needs UCS-2 (not GSM-7; the sms-service
needs ``accept-x-kannel-headers = true``). ``id`` is Kannel's message UUID:
the same on every retry of one message, so the desk answers it exactly once.

Delivery reports (``GET|POST /sms/dlr``): the notifier asks for them with a
``dlr-url`` (``dlr_url``) naming the outbox message and its attempt; Kannel
calls it with ``type=%d`` (1 delivered, 2 not delivered, 4 buffered on the
SMSC, 8 taken by the SMSC, 16 refused by the SMSC), ``at=%T`` and
``answer=%A``.

Authentication: the shared gateway secret as the HTTP Basic password, which
Kannel sends when the URL it calls carries it (``http://kannel:SECRET@host/...``).
"""

from __future__ import annotations

import codecs
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from ledger.outbox import DlrStatus
from menus.gsm import is_gsm7
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
from ussd_service.delivery_reports import DeliveryReport
from ussd_service.hop import MalformedRequestError, normalise_msisdn
from ussd_service.sms_desk import InboundSms

PATH = "/sms/inbound"
DLR_PATH = "/sms/dlr"
GATEWAY = "sms"
MAX_NUMBER_FIELD = 32
# A long SMS arrives as one text of up to a few concatenated parts.
MAX_SMS_TEXT = 1600
# Gateway message ids are short; bounded so that ledger keys derived from them fit.
MAX_MESSAGE_ID = 128
MAX_QUERY_FIELD = 64
# The SMSC's words in a delivery report are kept up to this length.
MAX_DLR_ANSWER = 200
# A report's time (``%T``) after this (the year 9999) is not one.
MAX_UNIX_TIME = 253_402_300_799
# Line breaks and tabs are ordinary in typed SMS; they separate words like spaces.
_WHITESPACE_CONTROLS = str.maketrans({"\r": " ", "\n": " ", "\t": " ", "\v": " ", "\f": " "})

# -- Kannel's conventions ----------------------------------------------------------

#: ``X-Kannel-Coding`` / ``coding`` values: GSM-7 text, 8-bit data, UCS-2.
KANNEL_7BIT, KANNEL_8BIT, KANNEL_UCS2 = "0", "1", "2"
KANNEL_CODING_HEADER = "X-Kannel-Coding"
KANNEL_FROM_HEADER = "X-Kannel-From"
KANNEL_TO_HEADER = "X-Kannel-To"
#: The charsets Kannel names (``%C``, a post-url's Content-Type) and Python's codec for each.
KANNEL_CHARSETS: Mapping[str, str] = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-16be": "utf-16-be",
    "ucs-2": "utf-16-be",
    "ucs-2be": "utf-16-be",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "windows-1252": "cp1252",
    "us-ascii": "ascii",
    "ascii": "ascii",
}
#: The query of the documented ``get-url`` (after ``/sms/inbound?``).
GET_URL_QUERY = "from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C"
#: The query of the documented ``post-url``.
POST_URL_QUERY = "id=%I"
#: Kannel's delivery report types (``%d``), what each says, and which are final.
DLR_DELIVERED, DLR_FAILED, DLR_BUFFERED, DLR_SMSC_ACK, DLR_SMSC_NACK = 1, 2, 4, 8, 16
#: Every report type: the notifier asks for all of them.
DLR_MASK = DLR_DELIVERED | DLR_FAILED | DLR_BUFFERED | DLR_SMSC_ACK | DLR_SMSC_NACK
_DLR_STATUS: Mapping[int, DlrStatus] = {
    DLR_DELIVERED: "delivered",
    DLR_FAILED: "failed",
    DLR_BUFFERED: "buffered",
    DLR_SMSC_ACK: "accepted",
    DLR_SMSC_NACK: "failed",
}
# SMPP errors of a refusal (``NACK/0x0000000b/...``) that no retry can cure:
# invalid source address, invalid destination address.
PERMANENT_NACK_ERRORS = frozenset({0x0A, 0x0B})
# Characters that survive in the user-info of a URL Kannel parses: it splits at
# the first ``:`` and ``@``, ends the authority at ``/`` and expands ``%`` escapes.
URL_SAFE_SECRET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: The user name the documented URLs give Kannel (only the password is checked).
KANNEL_USER = "kannel"


def secret_fits_url(secret: str) -> bool:
    """True when ``secret`` can be the password of a URL that Kannel calls."""
    return bool(secret) and set(secret) <= URL_SAFE_SECRET


def dlr_url(base_url: str, secret: str | None, outbox_id: int, attempt: int) -> str:
    """The ``dlr-url`` of attempt ``attempt`` of outbox message ``outbox_id``.

    ``base_url`` is the service as Kannel calls it (``USSD_PUBLIC_URL``); the
    gateway ``secret`` rides in the user-info (Kannel sends it as HTTP Basic).
    """
    parts = urlsplit(base_url)
    netloc = parts.netloc.rpartition("@")[2]
    if secret is not None:
        if not secret_fits_url(secret):
            raise ValueError("the gateway secret cannot ride in a URL Kannel calls")
        netloc = f"{KANNEL_USER}:{secret}@{netloc}"
    path = parts.path.rstrip("/") + DLR_PATH
    query = f"outbox={outbox_id}&attempt={attempt}&type=%d&at=%T&answer=%A"
    return urlunsplit((parts.scheme, netloc, path, query, ""))


# -- parsing ----------------------------------------------------------------------------


def _raw_query(request: web.Request) -> dict[str, bytes]:
    """The query's fields as bytes (first value wins): texts may be UTF-16BE."""
    raw = request.raw_path.partition("?")[2]
    fields: dict[str, bytes] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, encoding="latin-1"):
        fields.setdefault(key, value.encode("latin-1"))
    return fields


def _ascii_fields(fields: Mapping[str, bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in fields.items():
        try:
            out[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRequestError(f"field {key} is not valid UTF-8") from None
    return out


def _codec(charset: str | None, coding: str | None) -> tuple[str, str]:
    """(Kannel's name, Python codec) of a message text's charset."""
    if coding == KANNEL_8BIT:
        raise MalformedRequestError("binary (8-bit) messages are not supported")
    if coding not in (None, "", KANNEL_7BIT, KANNEL_UCS2):
        raise MalformedRequestError("coding must be 0, 1 or 2")
    if not charset:
        charset = "UTF-16BE" if coding == KANNEL_UCS2 else "UTF-8"
    codec = KANNEL_CHARSETS.get(charset.strip().strip('"').lower())
    if codec is None:
        raise MalformedRequestError(f"unknown charset {charset[:MAX_QUERY_FIELD]}")
    return charset, codec


def _decode_text(data: bytes, charset: str | None, coding: str | None) -> str:
    name, codec = _codec(charset, coding)
    try:
        return codecs.decode(data, codec)
    except UnicodeDecodeError:
        hint = " (set mo-recode = true in the smsbox group)" if codec == "utf-16-be" else ""
        raise MalformedRequestError(f"text is not valid {name}{hint}") from None


def _inbound(sender: Any, to: Any, text: Any, message_id: Any) -> InboundSms:
    """The checked message: every convention ends here."""
    fields = {"from": sender, "to": to, "text": text, "id": message_id}
    msisdn = normalise_msisdn(require(fields, "from", max_len=MAX_NUMBER_FIELD), "from")
    receiver = require(fields, "to", max_len=MAX_NUMBER_FIELD)
    if isinstance(text, str):
        fields["text"] = text.translate(_WHITESPACE_CONTROLS)
    body = require(fields, "text", max_len=MAX_SMS_TEXT, allow_empty=True)
    checked_id = None
    if message_id:
        checked_id = require(fields, "id", max_len=MAX_MESSAGE_ID)
        if any(ch.isspace() for ch in checked_id):
            raise MalformedRequestError("field id contains spaces")
    return InboundSms(msisdn=msisdn, to=receiver, text=body, message_id=checked_id)


async def parse_get(request: web.Request) -> InboundSms:
    """Kannel's ``get-url``: everything in the query (raises MalformedRequestError)."""
    raw = _raw_query(request)
    fields = _ascii_fields({k: v for k, v in raw.items() if k != "text"})
    text = None
    if "text" in raw:
        text = _decode_text(raw["text"], fields.get("charset"), fields.get("coding"))
    return _inbound(fields.get("from"), fields.get("to"), text, fields.get("id"))


async def _parse_kannel_post(request: web.Request) -> InboundSms:
    """Kannel's ``post-url``: the text is the body, the numbers in X-Kannel headers."""
    query = _ascii_fields(_raw_query(request))
    coding = request.headers.get(KANNEL_CODING_HEADER)
    text = _decode_text(await request.read(), request.charset, coding)
    sender = request.headers.get(KANNEL_FROM_HEADER) or query.get("from")
    if not sender:
        raise MalformedRequestError(
            f"missing {KANNEL_FROM_HEADER} (send-sender = true) or from in the query"
        )
    to = request.headers.get(KANNEL_TO_HEADER) or query.get("to")
    if not to:
        raise MalformedRequestError(f"missing {KANNEL_TO_HEADER} or to in the query")
    return _inbound(sender, to, text, query.get("id"))


async def parse_post(request: web.Request) -> InboundSms:
    """A form, or Kannel's ``post-url`` (``text/plain``) (raises MalformedRequestError)."""
    if request.content_type == TEXT_PLAIN:
        return await _parse_kannel_post(request)
    if request.content_type != FORM:
        raise MalformedRequestError(
            f"expected Content-Type {FORM} (a form) or {TEXT_PLAIN} (Kannel post-url)"
        )
    form = await read_form(request)
    return _inbound(form.get("from"), form.get("to"), form.get("text"), form.get("id"))


def render(reply: str, _message: object = None) -> web.Response:
    """The answer SMS as Kannel takes it: a 200 with text; UCS-2 asked for when needed."""
    headers = {} if is_gsm7(reply) else {KANNEL_CODING_HEADER: KANNEL_UCS2}
    return web.Response(text=reply, content_type=TEXT_PLAIN, charset="utf-8", headers=headers)


# -- delivery reports ------------------------------------------------------------------------


def _positive(fields: Mapping[str, str], name: str) -> int:
    value = require(dict(fields), name, max_len=18)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise MalformedRequestError(f"field {name} must be a positive whole number")
    return int(value)


def _nack_error(answer: str) -> int | None:
    """The SMPP error of a refusal ``NACK/0x0000000b/...``, when it names one."""
    parts = answer.split("/")
    if len(parts) < 2 or not parts[0].upper().endswith("NACK"):
        return None
    try:
        return int(parts[1], 16) if parts[1].lower().startswith("0x") else int(parts[1])
    except ValueError:
        return None


def delivery_report(fields: Mapping[str, str]) -> DeliveryReport:
    """The report in a ``dlr-url`` call's fields (raises MalformedRequestError)."""
    outbox_id = _positive(fields, "outbox")
    attempt = _positive(fields, "attempt")
    kind = _positive(fields, "type")
    if kind not in _DLR_STATUS:
        raise MalformedRequestError("field type must be one of 1, 2, 4, 8, 16")
    answer = " ".join(str(fields.get("answer") or "").split())[:MAX_DLR_ANSWER] or None
    at = None
    stamp = fields.get("at") or ""
    if stamp:
        if not (stamp.isascii() and stamp.isdigit()) or not 0 < int(stamp) <= MAX_UNIX_TIME:
            raise MalformedRequestError("field at must be a Unix time in seconds")
        at = datetime.fromtimestamp(int(stamp), UTC)
    permanent = kind == DLR_FAILED or (
        kind == DLR_SMSC_NACK and _nack_error(answer or "") in PERMANENT_NACK_ERRORS
    )
    status = _DLR_STATUS[kind]
    return DeliveryReport(outbox_id, attempt, status, permanent=permanent, at=at, detail=answer)


async def parse_dlr(request: web.Request) -> DeliveryReport:
    """Kannel calling a ``dlr-url``: fields in the query (or a POSTed form)."""
    fields = _ascii_fields(_raw_query(request))
    if request.method == "POST" and request.content_type == FORM:
        for key, value in (await read_form(request)).items():
            fields.setdefault(key, value)
    return delivery_report(fields)


def render_dlr(_result: Any, _message: object = None) -> web.Response:
    """Kannel ignores the body of a report's answer; a 200 stops its retries."""
    return web.Response(text="ok\n", content_type=TEXT_PLAIN)


# -- client halves: the requests Kannel sends ---------------------------------------------


@dataclass
class Client:
    """A form-posting SMS gateway: one POST per message from the subscriber."""

    msisdn: str
    short_number: str

    def message(self, text: str, message_id: str) -> GatewayRequest:
        """The gateway delivering ``text`` (its id stays the same on redelivery)."""
        form = {"from": self.msisdn, "to": self.short_number, "text": text, "id": message_id}
        return GatewayRequest("POST", PATH, urlencode(form).encode(), FORM)

    def read(self, status: int, body: str) -> Reading:
        """The answer SMS is the body."""
        return Reading(status, body.strip(), True, raw=body)


@dataclass
class KannelGetClient(Client):
    """Kannel's ``get-url`` as documented (``mo-recode = true``: every text in UTF-8).

    ``ucs2_raw=True`` plays a smsbox without ``mo-recode``: a text outside
    GSM-7 arrives as its UTF-16BE bytes with ``coding=2&charset=UTF-16BE``.
    """

    ucs2_raw: bool = False

    def message(self, text: str, message_id: str) -> GatewayRequest:
        """``GET /sms/inbound?from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C``."""
        raw = self.ucs2_raw and not is_gsm7(text)
        data = text.encode("utf-16-be" if raw else "utf-8")
        query = "&".join(
            (
                f"from={quote(self.msisdn, safe='')}",
                f"to={quote(self.short_number, safe='')}",
                f"text={quote(data, safe='')}",
                f"id={quote(message_id, safe='')}",
                f"coding={KANNEL_UCS2 if raw else KANNEL_7BIT}",
                f"charset={'UTF-16BE' if raw else 'UTF-8'}",
            )
        )
        return GatewayRequest("GET", f"{PATH}?{query}")


@dataclass
class KannelPostClient(Client):
    """Kannel's ``post-url`` as documented (``send-sender = true``, ``id=%I`` in the query)."""

    smsc: str = "smsc"
    service: str = "default"
    headers: dict[str, str] = field(default_factory=dict)

    def message(self, text: str, message_id: str) -> GatewayRequest:
        """``POST /sms/inbound?id=%I``, the text as a UTF-8 body, ``X-Kannel-*`` headers."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        headers = {
            KANNEL_FROM_HEADER: self.msisdn,
            KANNEL_TO_HEADER: self.short_number,
            "X-Kannel-Time": now,
            "X-Kannel-SMSC": self.smsc,
            KANNEL_CODING_HEADER: KANNEL_7BIT,
            "X-Kannel-Service": self.service,
            **self.headers,
        }
        return GatewayRequest(
            "POST",
            PATH,
            text.encode(),
            'text/plain; charset="UTF-8"',
            query={"id": message_id},
            headers=headers,
        )


def kannel_dlr(
    outbox_id: int, attempt: int, kind: int, *, answer: str = "", at: int | None = None
) -> GatewayRequest:
    """Kannel calling the ``dlr-url`` of a notification (``type=%d&at=%T&answer=%A``)."""
    query = {
        "outbox": str(outbox_id),
        "attempt": str(attempt),
        "type": str(kind),
        "at": str(at if at is not None else int(datetime.now(UTC).timestamp())),
        "answer": answer,
    }
    return GatewayRequest("GET", DLR_PATH, query=query)


def new_message_id() -> str:
    """A message id as Kannel makes them (``%I``: a UUID)."""
    return str(uuid.uuid4())


# -- the dialect ------------------------------------------------------------------------------

_DESCRIPTION = (
    "Commands (any case, Latin or Cyrillic): `DAR|GIFT|ДАР|ПОДАРОК <number> <points>` gifts "
    "points; `DAR` alone accepts the oldest pending gift; `NET|NO|НЕТ` declines it; "
    "`BALANCE|БАЛАНС`; anything else gets the help text. The same `id` (Kannel's `%I`, "
    "stable across its retries) is answered once: a redelivery gets the same reply and "
    "moves no points again. The reply is always a 200 with the answer text "
    "(`X-Kannel-Coding: 2` when it needs UCS-2)."
)
_REPLY: Mapping[str, Any] = {
    "200": {
        "description": "the answer SMS (`X-Kannel-Coding: 2` when not GSM-7)",
        "content": {TEXT_PLAIN: {"schema": STR}},
    }
}


def _query(name: str, description: str, *, required: bool = False) -> Mapping[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


_ID_PARAM = _query("id", "Kannel's message id `%I`, stable across retries: exactly-once answers")
_GET_PARAMS = [
    _query("from", "the sender's number `%p`", required=True),
    _query("to", "the short number `%P`", required=True),
    _query("text", "the message `%b`, in `charset`", required=True),
    _ID_PARAM,
    _query("coding", "`%c`: 0 text, 2 UCS-2 (1, binary, is refused)"),
    _query("charset", "`%C`: UTF-8 (with mo-recode) or UTF-16BE"),
]
_POST_BODY = {
    "required": True,
    "content": {
        **form_body(
            {
                "from": {"type": "string", "description": "the sender's number"},
                "to": {"type": "string", "description": "the short number"},
                "text": {"type": "string", "maxLength": MAX_SMS_TEXT},
                "id": {"type": "string", "maxLength": MAX_MESSAGE_ID},
            },
            ["from", "to", "text"],
        )["content"],
        TEXT_PLAIN: {
            "schema": {
                "type": "string",
                "description": "Kannel post-url: the text, in the Content-Type's charset; "
                "headers X-Kannel-From (send-sender = true), X-Kannel-To, X-Kannel-Coding",
            }
        },
    },
}
_DLR_PARAMS = [
    _query("outbox", "the outbox message id", required=True),
    _query("attempt", "the attempt the report is on", required=True),
    _query(
        "type",
        "Kannel's `%d`: 1 delivered, 2 failed, 4 buffered, 8 SMSC ack, 16 SMSC nack",
        required=True,
    ),
    _query("at", "`%T`: Unix time of the report"),
    _query("answer", "`%A`: the SMSC's words"),
]
_DLR_RESPONSES = {
    "200": {"description": "recorded (or ignored: stale, duplicate, unknown)"},
    "503": {"description": "the ledger is unreachable; the gateway should retry"},
}


def _dlr_route(method: str) -> Route:
    return Route(
        method,
        DLR_PATH,
        f"sms_dlr_{method.lower()}",
        parse_dlr,
        render_dlr,
        gateway_operation(
            "A delivery report of a notification (Kannel dlr-url).",
            description="Delivered marks the outbox message delivered; not delivered sends "
            "it back for a retry with backoff (refused by the SMSC) or parks it (the phone "
            "never got it, or an invalid number). `GET /v1/outbox` shows the latest report.",
            parameters=_DLR_PARAMS,
            responses=_DLR_RESPONSES,
        ),
    )


DIALECT = Dialect(
    name=GATEWAY,
    channel="sms",
    summary="SMS to 4555 through Kannel's smsbox (get-url, post-url) or a form-posting gateway",
    sms_client=KannelGetClient,
    routes=(
        Route(
            "GET",
            PATH,
            "sms_inbound_get",
            parse_get,
            render,
            gateway_operation(
                "An SMS to 4555, as Kannel's sms-service get-url delivers it.",
                description=_DESCRIPTION,
                parameters=_GET_PARAMS,
                responses=_REPLY,
            ),
        ),
        Route(
            "POST",
            PATH,
            "sms_inbound",
            parse_post,
            render,
            gateway_operation(
                "An SMS to 4555: Kannel's post-url (text/plain) or a form.",
                description=_DESCRIPTION,
                parameters=[_ID_PARAM],
                request_body=_POST_BODY,
                responses=_REPLY,
            ),
        ),
        _dlr_route("GET"),
        _dlr_route("POST"),
    ),
)
