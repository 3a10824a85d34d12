"""The 0890 voice line in Twilio's convention: form webhooks in, TwiML out.

Each ``<Gather>`` posts back to ``/ivr/twilio?seq=N`` where N is the session's
hop counter, so a request Twilio repeats carries the same hop id. A
``<Redirect>`` after the Gather (``&timeout=1``) turns silence into a timeout
hop. The status callback ends the session.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from menus.screen import Screen
from ussd_service.auth import check_twilio_signature
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

PATH = "/ivr/twilio"
STATUS_PATH = "/ivr/twilio/status"
GATEWAY = "twilio"
MAX_NUMBER_FIELD = 64
MAX_DIGITS = 32
# Call states after which the call is over (Twilio's CallStatus values).
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
DTMF_KEYS = frozenset("0123456789*#")


def _seq(request: web.Request) -> int | None:
    raw = request.query.get("seq")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise MalformedRequestError("query parameter seq must be a small whole number")
    return int(raw)


async def parse(request: web.Request) -> Hop:
    """The hop in a Twilio voice webhook."""
    form = await read_form(request)
    sid = session_id(form, "CallSid")
    msisdn = normalise_msisdn(require(form, "From", max_len=MAX_NUMBER_FIELD), "From")
    digits = form.get("Digits", "")
    if len(digits) > MAX_DIGITS or not set(digits) <= DTMF_KEYS:
        raise MalformedRequestError("field Digits must hold DTMF keys only")
    seq = _seq(request)
    if seq is None:
        kind, hop_id = HopKind.BEGIN, "begin"
    elif request.query.get("timeout") == "1" and not digits:
        kind, hop_id = HopKind.TIMEOUT, f"{seq}:timeout"
    else:
        kind, hop_id = HopKind.INPUT, f"{seq}:keys"
    return Hop(
        channel="ivr",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=kind,
        hop_id=hop_id,
        input=digits,
    )


async def parse_status(request: web.Request) -> Hop | None:
    """An ABORT hop when the status callback says the call is over, else None."""
    form = await read_form(request)
    sid = session_id(form, "CallSid")
    status = require(form, "CallStatus", max_len=32)
    if status not in ENDED_STATUSES:
        return None
    msisdn = normalise_msisdn(require(form, "From", max_len=MAX_NUMBER_FIELD), "From")
    return Hop(
        channel="ivr",
        gateway=GATEWAY,
        session_id=sid,
        msisdn=msisdn,
        kind=HopKind.ABORT,
        hop_id=f"status:{status}",
    )


def _speak(target: VoiceResponse | Gather, screen: Screen) -> None:
    hints = screen.ivr
    for prompt in screen.prompts:
        if prompt.audio:
            target.play(prompt.audio)
        elif hints is not None:
            # A prompt in another language than the screen's names its own voice.
            voice = prompt.voice or hints.voice or None
            language = prompt.language_code or hints.language_code
            target.say(prompt.text, voice=voice, language=language)
        else:
            target.say(prompt.text)


def render(answer: Answer, _message: object = None) -> web.Response:
    """TwiML for the answer's screen; its ``seq`` numbers the next hop."""
    return web.Response(
        text=twiml(answer.screen, seq=answer.seq, handoff_id=answer.handoff_id),
        content_type="text/xml",
        charset="utf-8",
    )


def render_status(_answer: Answer | None, _message: object = None) -> web.Response:
    """A status callback needs no content."""
    return web.Response(status=204)


def twiml(screen: Screen, *, seq: int, handoff_id: int | None = None) -> str:
    """TwiML for ``screen``; ``seq`` numbers the next hop."""
    response = VoiceResponse()
    if screen.handoff is not None:
        _speak(response, screen)
        dial = Dial()
        destination = screen.handoff.destination
        if destination.startswith("sip:"):
            # The handoff id travels as a SIP header, so the operator's desk can show it.
            separator = "&" if "?" in destination else "?"
            header = urlencode({"X-Handoff-Id": handoff_id if handoff_id is not None else ""})
            dial.sip(f"{destination}{separator}{header}")
        else:
            dial.number(destination)
        response.append(dial)
    elif screen.final:
        _speak(response, screen)
        response.hangup()
    else:
        hints = screen.ivr
        action = f"{PATH}?seq={seq}"
        gather = Gather(
            input="dtmf",
            action=action,
            method="POST",
            num_digits=hints.num_digits if hints and hints.num_digits else None,
            finish_on_key=hints.finish_on_key if hints else "#",
            timeout=hints.timeout if hints else 5,
            action_on_empty_result=False,
        )
        _speak(gather, screen)
        response.append(gather)
        # Reached only when the caller pressed nothing: a timeout hop.
        response.redirect(f"{action}&timeout=1", method="POST")
    return str(response)


def read_twiml(status: int, body: str) -> Reading:
    """What a TwiML reply says (``<Gather>``, ``<Say>``, ``<Play>``, ``<Dial>``)."""
    if status != 200:
        return Reading(status, body.strip(), True, raw=body)
    # The TwiML comes from the service itself, not from an untrusted party.
    root = ET.fromstring(body)  # noqa: S314
    says = tuple((el.text or "").strip() for el in root.iter("Say"))
    plays = tuple((el.text or "").strip() for el in root.iter("Play"))
    transfer = None
    dial = root.find("Dial")
    if dial is not None:
        target = dial.find("Number")
        if target is None:
            target = dial.find("Sip")
        transfer = ((target.text if target is not None else dial.text) or "").strip()
    gather = root.find("Gather")
    num_digits = timeout = None
    finish = ""
    if gather is not None:
        num_digits = int(gather.get("numDigits", "0")) or None
        finish = gather.get("finishOnKey", "#")
        timeout = int(gather.get("timeout", "5"))
    return Reading(
        status,
        "\n".join(says),
        gather is None,
        raw=body,
        prompts=says,
        audio=plays,
        transfer=transfer,
        num_digits=num_digits,
        finish_on_key=finish,
        timeout=timeout,
    )


@dataclass
class Session:
    """Twilio's side of a call: webhooks to the Gather's action, or its Redirect on silence."""

    msisdn: str
    session_id: str
    service: str
    action: str | None = None
    redirect: str | None = None

    def _form(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.session_id,
            "From": self.msisdn,
            "To": self.service,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            **extra,
        }

    @staticmethod
    def _post(url: str, form: dict[str, str]) -> GatewayRequest:
        path, _, query = url.partition("?")
        params = dict(parse_qsl(query))
        return GatewayRequest("POST", path, urlencode(form).encode(), FORM, query=params)

    def begin(self) -> GatewayRequest:
        """The call is answered."""
        return self._post(PATH, self._form())

    def answer(self, keys: str) -> GatewayRequest:
        """Keys the Gather collected, posted to its action."""
        return self._post(self.action or PATH, self._form(Digits=keys))

    def silence(self) -> GatewayRequest | None:
        """Nothing pressed: Twilio follows the Redirect after the Gather."""
        return self._post(self.redirect, self._form()) if self.redirect else None

    def end(self) -> GatewayRequest:
        """The caller hung up: the status callback says the call is completed."""
        return self._post(STATUS_PATH, self._form(CallStatus="completed"))

    def read(self, status: int, body: str) -> Reading:
        """Read the TwiML and keep where Twilio would post next."""
        reading = read_twiml(status, body)
        self.action = self.redirect = None
        if status == 200 and not reading.final:
            root = ET.fromstring(body)  # noqa: S314 - the service's own TwiML
            gather, redirect = root.find("Gather"), root.find("Redirect")
            self.action = gather.get("action") if gather is not None else None
            self.redirect = (redirect.text or "").strip() if redirect is not None else None
        return reading


_TWILIO_FORM = form_body(
    {"CallSid": STR, "From": STR, "To": STR, "Digits": STR, "CallStatus": STR},
    ["CallSid", "From"],
)

DIALECT = Dialect(
    name=GATEWAY,
    channel="ivr",
    summary="Twilio voice webhooks answered with TwiML",
    session=Session,
    routes=(
        Route(
            "POST",
            PATH,
            "ivr_twilio",
            parse,
            render,
            gateway_operation(
                "The 0890 voice line: Twilio voice webhook, answered with TwiML.",
                parameters=[
                    {
                        "name": "seq",
                        "in": "query",
                        "schema": {"type": "integer"},
                        "description": "hop counter the previous TwiML put in the action URL",
                    },
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["1"]},
                        "description": "set by the Redirect that follows a Gather: no keys",
                    },
                ],
                request_body=_TWILIO_FORM,
                responses={
                    "200": {"description": "TwiML", "content": {"text/xml": {"schema": STR}}}
                },
            ),
            verify=check_twilio_signature,
        ),
        Route(
            "POST",
            STATUS_PATH,
            "ivr_twilio_status",
            parse_status,
            render_status,
            gateway_operation(
                "Twilio call status callback; a finished call ends its session.",
                request_body=form_body(
                    {"CallSid": STR, "From": STR, "CallStatus": STR}, ["CallSid", "CallStatus"]
                ),
                responses={"204": {"description": "noted"}},
            ),
            verify=check_twilio_signature,
        ),
    ),
)
