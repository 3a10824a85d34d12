"""The 0890 voice line in Twilio's convention: form webhooks in, TwiML out.

Each ``<Gather>`` posts back to ``/ivr/twilio?seq=N`` where N is the session's
hop counter, so a request Twilio repeats carries the same hop id. A
``<Redirect>`` after the Gather (``&timeout=1``) turns silence into a timeout
hop. The status callback ends the session.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from menus.screen import Screen
from ussd_service.channels.forms import read_form, require, session_id
from ussd_service.hop import Hop, HopKind, MalformedRequestError, normalise_msisdn

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
    if not raw.isdigit() or len(raw) > 9:
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
            target.say(prompt.text, voice=hints.voice or None, language=hints.language_code)
        else:
            target.say(prompt.text)


def render(screen: Screen, *, seq: int, handoff_id: int | None = None) -> web.Response:
    """TwiML for the screen; ``seq`` numbers the next hop."""
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
    return web.Response(text=str(response), content_type="text/xml", charset="utf-8")
