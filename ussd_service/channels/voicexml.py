"""The 0890 voice line on a VoiceXML 2.1 browser: form posts in, VoiceXML out.

The browser's first fetch of a call is usually a GET of the application URL
with the call's ids in the query (``?session=…&caller=…&called=…``); every
later fetch is the ``<submit>`` of the previous document, a form POST of the
document's variables ``session caller called`` and the field ``digits``. The
document declares those variables itself, so the ids travel with the call.

Each ``<field>`` submits to ``/ivr/voicexml?seq=N`` (N: the session's hop
counter), so a fetch the browser retries carries the same hop id; its
``<noinput>`` submits to ``…&timeout=1`` (a timeout hop). A document-level
``<catch event="connection.disconnect">`` reports the end of the call
(hang-up, ``<disconnect/>``, a blind transfer) to ``/ivr/voicexml/hangup``,
which ends the session. Documents are built with ``xml.etree.ElementTree``,
which escapes every text and attribute; the one VoiceXML package on PyPI
(pyvxml, 2015) is unmaintained and adds nothing a document this size needs.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from menus.screen import IvrHints, Screen
from ussd_service.channels.dialect import (
    FORM,
    STR,
    Dialect,
    GatewayRequest,
    Reading,
    Route,
    form_body,
    gateway_operation,
)
from ussd_service.channels.forms import read_form, require, session_id
from ussd_service.hop import Answer, Hop, HopKind, MalformedRequestError, normalise_msisdn

PATH = "/ivr/voicexml"
HANGUP_PATH = "/ivr/voicexml/hangup"
GATEWAY = "voicexml"
CONTENT_TYPE = "application/voicexml+xml"
VXML_NS = "http://www.w3.org/2001/vxml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_NUMBER_FIELD = 64
MAX_DIGITS = 32
DTMF_KEYS = "0123456789*#"
DEFAULT_TIMEOUT_S = 5
# The document's variables the browser posts back with every submit.
CALL_VARS = ("session", "caller", "called")
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# For a screen without IVR hints (none of the menu's): keys up to "#", no language.
_DEFAULT_HINTS = IvrHints(None, "#", DEFAULT_TIMEOUT_S, "", "")


@dataclass(frozen=True, slots=True)
class Call:
    """The call's ids, as the next document must declare them."""

    session: str
    caller: str
    called: str = ""


async def _fields(request: web.Request) -> dict[str, str]:
    """The request's fields: the query of a GET, the form of a POST."""
    if request.method == "GET":
        # Repeated parameters keep their first value, as read_form does.
        return dict(reversed(list(request.query.items())))
    return await read_form(request)


def _position(request: web.Request) -> tuple[int | None, bool]:
    """``seq`` (None on the call's first fetch) and whether ``timeout=1`` is set."""
    seq, timeout = request.query.get("seq"), request.query.get("timeout")
    if seq is not None and (not seq.isascii() or not seq.isdigit() or len(seq) > 9):
        raise MalformedRequestError("query parameter seq must be a small whole number")
    if timeout is not None and timeout != "1":
        raise MalformedRequestError("query parameter timeout must be 1")
    return (int(seq) if seq is not None else None), timeout == "1"


def _call(fields: dict[str, str]) -> Call:
    sid = session_id(fields, "session")
    # session.connection.remote.uri gives a PSTN caller as a tel: URI (RFC 3966).
    caller = require(fields, "caller", max_len=MAX_NUMBER_FIELD).removeprefix("tel:")
    called = ""
    if fields.get("called") is not None:
        called = require(fields, "called", max_len=MAX_NUMBER_FIELD, allow_empty=True)
    return Call(sid, normalise_msisdn(caller, "caller"), called)


def _digits(fields: dict[str, str]) -> str:
    if fields.get("digits") is None:
        return ""
    # Browsers may report a DTMF utterance with spaces between the keys ("1 2 3").
    digits = require(fields, "digits", max_len=2 * MAX_DIGITS, allow_empty=True).replace(" ", "")
    if len(digits) > MAX_DIGITS or not set(digits) <= set(DTMF_KEYS):
        raise MalformedRequestError("field digits must hold DTMF keys only")
    return digits


async def parse(request: web.Request) -> Hop:
    """The hop in a document fetch (GET query or POSTed form)."""
    fields = await _fields(request)
    call = _call(fields)
    digits = _digits(fields)
    seq, timed_out = _position(request)
    if seq is None:
        kind, hop_id = HopKind.BEGIN, "begin"
    elif timed_out and not digits:
        kind, hop_id = HopKind.TIMEOUT, f"{seq}:timeout"
    else:
        kind, hop_id = HopKind.INPUT, f"{seq}:keys"
    return Hop(
        "ivr", GATEWAY, call.session, call.caller, kind, hop_id, input=digits, service=call.called
    )


async def parse_hangup(request: web.Request) -> Hop:
    """The call is over: an ABORT hop."""
    call = _call(await read_form(request))
    return Hop("ivr", GATEWAY, call.session, call.caller, HopKind.ABORT, "hangup")


def render(answer: Answer, hop: Hop) -> web.Response:
    """The VoiceXML document of the answer's screen; its ``seq`` numbers the next hop."""
    # The document declares the call's ids, for the browser to submit them back.
    call = Call(hop.session_id, hop.msisdn, hop.service)
    document = vxml(answer.screen, seq=answer.seq, call=call, handoff_id=answer.handoff_id)
    return web.Response(text=document, content_type=CONTENT_TYPE, charset="utf-8")


# The hang-up report is a <submit>: what it fetches must be a document, so one that exits.
_EXIT = (
    f'{_DECLARATION}<vxml version="2.1" xmlns="{VXML_NS}">'
    "<form><block><exit/></block></form></vxml>"
)


def render_hangup(_answer: Answer, _message: object = None) -> web.Response:
    """A VoiceXML document that exits (the browser fetched it, so it must be one)."""
    return web.Response(text=_EXIT, content_type=CONTENT_TYPE, charset="utf-8")


# -- building documents ---------------------------------------------------------


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _speak(parent: ET.Element, screen: Screen) -> None:
    for prompt in screen.prompts:
        element = _el(parent, "prompt")
        if prompt.audio:
            # The text is the fallback the browser speaks when the file cannot be fetched.
            _el(element, "audio", src=prompt.audio).text = prompt.text or None
        else:
            element.text = prompt.text
        if prompt.language_code:
            # A prompt in another language than the document's.
            element.set(XML_LANG, prompt.language_code)


def _submit(parent: ET.Element, url: str, names: tuple[str, ...]) -> None:
    _el(parent, "submit", next=url, namelist=" ".join(names), method="post")


def _grammar(parent: ET.Element, num_digits: int | None, termchar: str) -> None:
    """An SRGS DTMF grammar: exactly ``num_digits`` keys, or 1..MAX_DIGITS of them."""
    grammar = _el(parent, "grammar", mode="dtmf", version="1.0", root="keys")
    grammar.set("type", "application/srgs+xml")
    rule = _el(grammar, "rule", id="keys", scope="public")
    repeat = str(num_digits) if num_digits else f"1-{MAX_DIGITS}"
    choice = _el(_el(rule, "item", repeat=repeat), "one-of")
    for key in DTMF_KEYS:
        if key != termchar:  # the termchar ends the input; it is never one of the keys
            _el(choice, "item").text = key


def _transfer_dest(destination: str, handoff_id: int | None) -> str:
    if destination.startswith(("sip:", "sips:")):
        # The handoff id travels as a SIP header, so the operator's desk can show it.
        separator = "&" if "?" in destination else "?"
        header = urlencode({"X-Handoff-Id": handoff_id if handoff_id is not None else ""})
        return f"{destination}{separator}{header}"
    return destination if destination.startswith("tel:") else f"tel:{destination}"


def vxml(screen: Screen, *, seq: int, call: Call, handoff_id: int | None = None) -> str:
    """The VoiceXML 2.1 document for ``screen``; ``seq`` numbers the next hop."""
    hints = screen.ivr or _DEFAULT_HINTS
    root = ET.Element("vxml", {"version": "2.1", "xmlns": VXML_NS})
    if hints.language_code:
        root.set(XML_LANG, hints.language_code)
    for name, value in asdict(call).items():
        # A JSON string is an ECMAScript string literal (ensure_ascii escapes U+2028 too).
        _el(root, "var", name=name, expr=json.dumps(value))
    # Prefix match: hang-up, <disconnect/> and a blind transfer all end the session.
    _submit(_el(root, "catch", event="connection.disconnect"), HANGUP_PATH, CALL_VARS)
    form = _el(root, "form", id="screen")
    if screen.handoff is not None:
        _speak(_el(form, "block"), screen)
        dest = _transfer_dest(screen.handoff.destination, handoff_id)
        _el(form, "transfer", name="operator", dest=dest, type="blind")
    elif screen.final:
        block = _el(form, "block")
        _speak(block, screen)
        _el(block, "disconnect")
    else:
        entry = _el(form, "field", name="digits")
        _el(entry, "property", name="inputmodes", value="dtmf")
        _el(entry, "property", name="timeout", value=f"{hints.timeout}s")
        # An empty termchar (single-key menus) lets "#" be a key of its own.
        _el(entry, "property", name="termchar", value=hints.finish_on_key)
        _grammar(entry, hints.num_digits, hints.finish_on_key)
        _speak(entry, screen)
        action = f"{PATH}?seq={seq}"
        _submit(_el(entry, "filled"), action, (*CALL_VARS, "digits"))
        # Keys the grammar cannot match are an answer the menu rejects, not silence.
        _submit(_el(entry, "nomatch"), action, CALL_VARS)
        _submit(_el(entry, "noinput"), f"{action}&timeout=1", CALL_VARS)
    return _DECLARATION + ET.tostring(root, encoding="unicode")


# -- reading documents (the client half) ----------------------------------------


def _q(tag: str) -> str:
    return f"{{{VXML_NS}}}{tag}"


def read_vxml(status: int, body: str) -> Reading:
    """What a VoiceXML document says: prompts, audio, the transfer, how keys are collected."""
    if status != 200:
        return Reading(status, body.strip(), True, raw=body)
    root = ET.fromstring(body)  # noqa: S314 - the service's own document
    spoken: list[str] = []
    audio: list[str] = []
    for prompt in root.iter(_q("prompt")):
        clip = prompt.find(_q("audio"))
        if clip is not None:
            audio.append(clip.get("src", ""))
        else:
            spoken.append("".join(prompt.itertext()).strip())
    transfer = root.find(f".//{_q('transfer')}")
    entry = root.find(f".//{_q('field')}")
    num_digits = timeout = None
    finish = ""
    if entry is not None:
        properties = {p.get("name"): p.get("value", "") for p in entry.iter(_q("property"))}
        finish = properties.get("termchar", "#")
        timeout = int(properties.get("timeout", f"{DEFAULT_TIMEOUT_S}s").removesuffix("s"))
        item = entry.find(f".//{_q('rule')}/{_q('item')}")
        repeat = item.get("repeat", "") if item is not None else ""
        num_digits = int(repeat) if repeat.isdigit() else None
    return Reading(
        status,
        "\n".join(spoken),
        entry is None,
        raw=body,
        prompts=tuple(spoken),
        audio=tuple(audio),
        transfer=transfer.get("dest") if transfer is not None else None,
        num_digits=num_digits,
        finish_on_key=finish,
        timeout=timeout,
    )


# A <submit>: its URL and the names of the variables it posts.
_Submit = tuple[str, tuple[str, ...]]


def _submit_in(parent: ET.Element | None) -> _Submit | None:
    found = parent.find(_q("submit")) if parent is not None else None
    if found is None:
        return None
    return found.get("next", ""), tuple(found.get("namelist", "").split())


@dataclass
class Session:
    """The VoiceXML browser's side of a call: it posts the document's variables back."""

    msisdn: str
    session_id: str
    service: str
    variables: dict[str, str] = field(default_factory=dict)
    filled: _Submit | None = None
    noinput: _Submit | None = None
    hangup: _Submit | None = None

    def _own(self) -> dict[str, str]:
        return {"session": self.session_id, "caller": self.msisdn, "called": self.service}

    def _post(self, submit: _Submit, **extra: str) -> GatewayRequest:
        url, names = submit
        known = {**self._own(), **self.variables, **extra}
        form = {name: known[name] for name in names if name in known}
        path, _, query = url.partition("?")
        params = dict(parse_qsl(query))
        return GatewayRequest("POST", path, urlencode(form).encode(), FORM, query=params)

    def begin(self) -> GatewayRequest:
        """The call is answered: the browser GETs the application URL."""
        self.variables = {}
        return GatewayRequest("GET", PATH, query=self._own())

    def answer(self, keys: str) -> GatewayRequest:
        """The field's ``<filled>`` submit, with the keys pressed."""
        return self._post(self.filled or (PATH, (*CALL_VARS, "digits")), digits=keys)

    def silence(self) -> GatewayRequest | None:
        """Nothing pressed: the ``<noinput>`` submit."""
        return self._post(self.noinput) if self.noinput else None

    def end(self) -> GatewayRequest:
        """The caller hung up: the ``connection.disconnect`` catch submits."""
        return self._post(self.hangup or (HANGUP_PATH, CALL_VARS))

    def read(self, status: int, body: str) -> Reading:
        """Read the document and keep its variables and where it submits next."""
        reading = read_vxml(status, body)
        self.filled = self.noinput = None
        if status != 200:
            return reading
        root = ET.fromstring(body)  # noqa: S314 - the service's own document
        for var in root.findall(_q("var")):
            value: Any = json.loads(var.get("expr", '""'))
            self.variables[var.get("name", "")] = str(value)
        self.hangup = _submit_in(root.find(_q("catch"))) or self.hangup
        entry = root.find(f".//{_q('field')}")
        if entry is not None:
            self.filled = _submit_in(entry.find(_q("filled")))
            self.noinput = _submit_in(entry.find(_q("noinput")))
        return reading


# -- OpenAPI ----------------------------------------------------------------------


def _param(name: str, description: str, schema: Any = STR, required: bool = False) -> Any:
    """A query parameter."""
    return {"name": name, "in": "query", "schema": schema, "description": description} | (
        {"required": True} if required else {}
    )


_DESCRIBED = {
    "session": "the browser's call id",
    "caller": "the caller's number (ANI); a tel: URI is read too",
    "called": "the number called",
    "digits": "the DTMF keys pressed",
}
_HOP_PARAMETERS = [
    _param("seq", "hop counter the previous document put in its submit URL", {"type": "integer"}),
    _param("timeout", "set by the <noinput> submit: no keys", {"type": "string", "enum": ["1"]}),
]
_DOCUMENT = {"200": {"description": "VoiceXML 2.1", "content": {CONTENT_TYPE: {"schema": STR}}}}
_DESCRIPTION = (
    "Each document declares the variables `session caller called` and submits them, "
    "with `digits`, to `?seq=N` (`&timeout=1` on no input); the same `seq` is "
    "answered from the stored reply."
)


def _form(*names: str) -> dict[str, Any]:
    properties = {name: {"type": "string", "description": _DESCRIBED[name]} for name in names}
    return form_body(properties, ["session", "caller"])


DIALECT = Dialect(
    name=GATEWAY,
    channel="ivr",
    summary="a VoiceXML 2.1 browser (documents fetched by GET or POST)",
    session=Session,
    routes=(
        Route(
            "POST",
            PATH,
            "ivr_voicexml",
            parse,
            render,
            gateway_operation(
                "The 0890 voice line: a VoiceXML browser's <submit>, answered with VoiceXML.",
                description=_DESCRIPTION,
                parameters=_HOP_PARAMETERS,
                request_body=_form(*CALL_VARS, "digits"),
                responses=_DOCUMENT,
            ),
        ),
        Route(
            "GET",
            PATH,
            "ivr_voicexml_get",
            parse,
            render,
            gateway_operation(
                "The 0890 voice line: a VoiceXML browser's document fetch by GET.",
                description="The call's first fetch (the application URL). " + _DESCRIPTION,
                parameters=[
                    *(
                        _param(name, text, required=name in ("session", "caller"))
                        for name, text in _DESCRIBED.items()
                    ),
                    *_HOP_PARAMETERS,
                ],
                responses=_DOCUMENT,
            ),
        ),
        Route(
            "POST",
            HANGUP_PATH,
            "ivr_voicexml_hangup",
            parse_hangup,
            render_hangup,
            gateway_operation(
                "The call ended (the document's connection.disconnect catch); ends the session.",
                request_body=_form(*CALL_VARS),
                responses=_DOCUMENT,
            ),
        ),
    ),
)
