"""``ussd-service simulate``: a phone in the terminal (USSD, IVR or SMS).

The simulator is a client of the real gateway endpoints: USSD goes through
``POST /ussd/africastalking`` (or the native JSON ``POST /ussd``), the voice
line through Twilio's webhook (``POST /ivr/twilio``, TwiML back) and SMS
through ``POST /sms/inbound``. In-process mode starts (or joins) the embedded
servers, serves the app on a free loopback port and talks HTTP to it, so both
modes run the same code path.

The phones here (``UssdPhone``, ``IvrPhone``, ``SmsPhone``) are also what the
conversation tests (``ussd_service.conversations``) drive.

Input is read line by line from stdin, so a script can drive it::

    printf '4\\n89161234567\\n150\\n1\\n' | ussd-service simulate --msisdn 89160000001
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urljoin

import aiohttp
import click
from aiohttp import web

import ledger
from menus import MenuRegistry
from menus.gsm import measure
from ussd_service.app import create_app
from ussd_service.backends import apply_migrations, backing_servers
from ussd_service.config import ConfigError, Settings, load_settings
from ussd_service.dialogue import DIALOGUE_TEXTS
from ussd_service.hop import normalise_msisdn
from ussd_service.logs import configure_logging

# Names for every limit and default (CONVENTIONS.md 9).
SCREEN_WIDTH = 30
USSD_GSM7_LIMIT = 182
USSD_UCS2_LIMIT = 80
DEFAULT_MSISDN = "+79160000001"
DEFAULT_USSD_CODE = "*111*455#"
DEFAULT_IVR_NUMBER = "0890"
SMS_SHORT_NUMBER = "4555"
HTTP_TIMEOUT_S = 30.0
LOOPBACK = "127.0.0.1"
SIMULATOR_LOG_LEVEL = "warning"
GATEWAY_TOKEN_HEADER = "X-Gateway-Token"  # noqa: S105 - a header name
GATEWAY_SECRET_ENV = "USSD_GATEWAY_SECRET"  # noqa: S105 - a variable name
API_TOKEN_ENV = "USSD_API_TOKEN"  # noqa: S105 - a variable name
AT_PATH = "/ussd/africastalking"
NATIVE_PATH = "/ussd"
TWILIO_PATH = "/ivr/twilio"
TWILIO_STATUS_PATH = "/ivr/twilio/status"
SMS_PATH = "/sms/inbound"
OUTBOX_PATH = "/v1/outbox"
HANDOFFS_PATH = "/v1/handoffs"
# Commands the hand-driven phone understands (anything else is input).
QUIT_WORDS = frozenset({"q", "quit", "exit"})
HANGUP_WORDS = frozenset({"/hangup", "/abort"})


class PhoneError(RuntimeError):
    """The service answered something a gateway would not accept (status, body)."""


# --------------------------------------------------------------------------- screens


@dataclass(frozen=True)
class Reply:
    """One answer of the service as the phone shows it, whatever the channel.

    ``text`` is the USSD page, the IVR prompts one per line, or the SMS reply.
    ``operator`` is set when the IVR transfers the call (``<Dial>``).
    """

    channel: str
    text: str
    final: bool
    operator: str | None = None
    prompts: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    num_digits: int | None = None
    finish_on_key: str = ""
    timeout: int | None = None
    raw: str = ""

    def expects(self) -> str:
        """What the IVR waits for, in words (``1 key``, ``keys, then #``)."""
        if self.final:
            return "nothing (the call ends)"
        if self.num_digits:
            return f"{self.num_digits} key" + ("s" if self.num_digits > 1 else "")
        if self.finish_on_key:
            return f"keys, then {self.finish_on_key}"
        return "keys"


def page_info(text: str) -> str:
    """``42 chars, GSM-7, limit 182`` for a USSD page (septets or UCS-2 units)."""
    size = measure(text)
    if size.gsm7:
        return f"{size.units} chars, GSM-7, limit {USSD_GSM7_LIMIT}"
    return f"{size.units} chars, UCS-2, limit {USSD_UCS2_LIMIT}"


def over_limit(text: str) -> bool:
    """True when the page is longer than a handset shows."""
    return not measure(text).fits(USSD_GSM7_LIMIT, USSD_UCS2_LIMIT)


def wrap_lines(text: str, width: int = SCREEN_WIDTH) -> list[str]:
    """The text as a handset shows it: each line wrapped to ``width`` columns."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(textwrap.wrap(line, width, break_long_words=True) or [""])
    return lines


def boxed(text: str, width: int = SCREEN_WIDTH) -> str:
    """The text in a box, ``width`` columns inside."""
    top = "┌" + "─" * width + "┐"
    bottom = "└" + "─" * width + "┘"
    body = ["│" + line.ljust(width) + "│" for line in wrap_lines(text, width)]
    return "\n".join([top, *body, bottom])


def render_ussd(reply: Reply) -> str:
    """A USSD page as a handset shows it, with its size line."""
    status = "END" if reply.final else "CON"
    warning = "  ** TOO LONG FOR ONE PAGE **" if over_limit(reply.text) else ""
    return f"{boxed(reply.text)}\n {status} · {page_info(reply.text)}{warning}"


def render_ivr(reply: Reply) -> str:
    """An IVR turn: what is said or played, then what the line waits for."""
    lines = [f"  (say) {prompt}" for prompt in reply.prompts]
    lines += [f"  (play) {audio}" for audio in reply.audio]
    if reply.operator is not None:
        lines.append(f"  (transfer to operator {reply.operator})")
    elif reply.final:
        lines.append("  (hang up)")
    else:
        timeout = f", timeout {reply.timeout} s" if reply.timeout else ""
        lines.append(f"  [waiting for {reply.expects()}{timeout}; empty line = no keys]")
    return "\n".join(lines)


def render_sms(reply: Reply) -> str:
    """An SMS reply as a message bubble."""
    return "\n".join(f"  < {line}" for line in reply.text.split("\n"))


def render(reply: Reply) -> str:
    """The reply as the phone of its channel shows it."""
    if reply.channel == "ivr":
        return render_ivr(reply)
    if reply.channel == "sms":
        return render_sms(reply)
    return render_ussd(reply)


# --------------------------------------------------------------------------- phones


@dataclass
class Gateway:
    """Where and how phones reach the service."""

    http: aiohttp.ClientSession
    base_url: str
    gateway_secret: str | None = None
    api_token: str | None = None

    def url(self, path: str) -> str:
        """An absolute URL of the service."""
        return urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def gateway_headers(self) -> dict[str, str]:
        """Headers a gateway presents (its shared secret, when configured)."""
        return {GATEWAY_TOKEN_HEADER: self.gateway_secret} if self.gateway_secret else {}

    def api_headers(self) -> dict[str, str]:
        """Headers of an operator API call (bearer token, when configured)."""
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    async def post_form(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        """POST a form; the status and the body."""
        async with self.http.post(
            self.url(path), data=form, headers=self.gateway_headers()
        ) as response:
            return response.status, await response.text()

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST JSON; the status and the decoded body."""
        async with self.http.post(
            self.url(path), json=body, headers=self.gateway_headers()
        ) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, await response.json(content_type=None)
            return response.status, text

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET an operator API resource (raises PhoneError unless 200)."""
        async with self.http.get(
            self.url(path), params=params, headers=self.api_headers()
        ) as response:
            if response.status != 200:
                raise PhoneError(f"GET {path}: HTTP {response.status}: {await response.text()}")
            return await response.json(content_type=None)

    async def waiting_handoffs(self, msisdn: str) -> list[dict[str, Any]]:
        """Handoffs waiting for an operator for ``msisdn``."""
        body = await self.get_json(HANDOFFS_PATH, {"status": "waiting"})
        items = body.get("items", []) if isinstance(body, dict) else []
        return [item for item in items if item.get("msisdn") == msisdn]


def _new_session_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class UssdPhone:
    """A handset dialling USSD codes; ``gateway`` picks the dialect.

    ``africastalking``: every request carries all inputs so far joined by
    ``*``; ``native``: JSON with one input per hop and explicit abort.
    """

    gw: Gateway
    msisdn: str
    gateway: str = "africastalking"
    session_id: str | None = None
    inputs: list[str] = field(default_factory=list)
    code: str = DEFAULT_USSD_CODE
    hops: int = 0
    last: Reply | None = None

    @property
    def in_session(self) -> bool:
        """True while a session is open (the last page asked for a reply)."""
        return self.session_id is not None and self.last is not None and not self.last.final

    async def dial(self, code: str = DEFAULT_USSD_CODE) -> Reply:
        """Start a session by dialling ``code`` (a shortcut string works too)."""
        self.session_id = _new_session_id("sim")
        self.inputs = []
        self.code = code
        self.hops = 0
        if self.gateway == "native":
            return await self._native("begin", "")
        return await self._africastalking()

    async def send(self, text: str) -> Reply:
        """Answer the current page."""
        if self.session_id is None:
            raise PhoneError("no session: dial first")
        self.inputs.append(text)
        if self.gateway == "native":
            return await self._native("input", text)
        return await self._africastalking()

    async def hang_up(self) -> Reply | None:
        """End the session from the handset (native dialect: an abort event)."""
        if self.session_id is None:
            return None
        reply = None
        if self.gateway == "native" and self.in_session:
            reply = await self._native("abort", "")
        self.session_id = None
        return reply

    async def _africastalking(self) -> Reply:
        assert self.session_id is not None
        form = {
            "sessionId": self.session_id,
            "serviceCode": self.code,
            "phoneNumber": self.msisdn,
            "networkCode": "25001",
            "text": "*".join(self.inputs),
        }
        status, body = await self.gw.post_form(AT_PATH, form)
        if status != 200:
            raise PhoneError(f"POST {AT_PATH}: HTTP {status}: {body.strip()}")
        head, _, text = body.partition(" ")
        if head not in ("CON", "END"):
            raise PhoneError(f"POST {AT_PATH}: reply starts with neither CON nor END: {body!r}")
        return self._got(Reply(channel="ussd", text=text, final=head == "END", raw=body))

    async def _native(self, event: str, text: str) -> Reply:
        assert self.session_id is not None
        self.hops += 1
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "msisdn": self.msisdn,
            "service_code": self.code,
            "event": event,
            "hop_id": f"h{self.hops}",
        }
        if event == "input":
            body["input"] = text
        status, answer = await self.gw.post_json(NATIVE_PATH, body)
        if status != 200 or not isinstance(answer, dict):
            raise PhoneError(f"POST {NATIVE_PATH}: HTTP {status}: {answer}")
        reply = Reply(
            channel="ussd",
            text=str(answer.get("text", "")),
            final=answer.get("action") == "end",
            raw=str(answer),
        )
        return self._got(reply)

    def _got(self, reply: Reply) -> Reply:
        self.last = reply
        if reply.final:
            self.session_id = None
        return reply


def parse_twiml(body: str) -> Reply:
    """A Reply from the service's TwiML (``<Gather>``, ``<Say>``, ``<Play>``, ``<Dial>``)."""
    # The TwiML comes from the service under test, not from an untrusted party.
    root = ET.fromstring(body)  # noqa: S314
    says = tuple((el.text or "").strip() for el in root.iter("Say"))
    plays = tuple((el.text or "").strip() for el in root.iter("Play"))
    operator = None
    dial = root.find("Dial")
    if dial is not None:
        target = dial.find("Number")
        if target is None:
            target = dial.find("Sip")
        operator = ((target.text if target is not None else dial.text) or "").strip()
    gather = root.find("Gather")
    num_digits = finish = timeout = None
    if gather is not None:
        num_digits = int(gather.get("numDigits", "0")) or None
        finish = gather.get("finishOnKey", "#")
        timeout = int(gather.get("timeout", "5"))
    return Reply(
        channel="ivr",
        text="\n".join(says),
        final=gather is None,
        operator=operator,
        prompts=says,
        audio=plays,
        num_digits=num_digits,
        finish_on_key=finish or "",
        timeout=timeout,
        raw=body,
    )


@dataclass
class IvrPhone:
    """A caller on the 0890 line, as Twilio would post the call's webhooks."""

    gw: Gateway
    msisdn: str
    number: str = DEFAULT_IVR_NUMBER
    call_sid: str | None = None
    last: Reply | None = None
    _action: str | None = None
    _redirect: str | None = None

    @property
    def in_session(self) -> bool:
        """True while the call waits for keys."""
        return self.call_sid is not None and self.last is not None and not self.last.final

    async def dial(self, number: str = DEFAULT_IVR_NUMBER) -> Reply:
        """Ring the line."""
        self.call_sid = "CA" + uuid.uuid4().hex
        self.number = number
        return await self._post(TWILIO_PATH, "")

    async def send(self, keys: str) -> Reply:
        """Press ``keys``, as Twilio's ``<Gather>`` would report them.

        With ``numDigits`` only that many keys count; otherwise the keys up to
        ``finishOnKey``. Nothing left (only ``#`` pressed) is like silence.
        """
        last = self._require_gather()
        digits = keys
        if last.num_digits:
            digits = keys[: last.num_digits]
        elif last.finish_on_key and last.finish_on_key in keys:
            digits = keys.split(last.finish_on_key, 1)[0]
        if not digits:
            return await self.wait()
        assert self._action is not None
        return await self._post(self._action, digits)

    async def wait(self) -> Reply:
        """Press nothing until the Gather times out (Twilio follows the Redirect)."""
        self._require_gather()
        assert self._redirect is not None
        return await self._post(self._redirect, "")

    async def hang_up(self) -> None:
        """Hang up: Twilio's status callback says the call is completed."""
        if self.call_sid is None:
            return
        form = self._form("")
        form["CallStatus"] = "completed"
        status, body = await self.gw.post_form(TWILIO_STATUS_PATH, form)
        if status >= 300:
            raise PhoneError(f"POST {TWILIO_STATUS_PATH}: HTTP {status}: {body.strip()}")
        self.call_sid = None

    def _require_gather(self) -> Reply:
        if self.call_sid is None or self.last is None or self.last.final:
            raise PhoneError("no call waiting for keys: dial first")
        return self.last

    def _form(self, digits: str) -> dict[str, str]:
        assert self.call_sid is not None
        form = {
            "CallSid": self.call_sid,
            "From": self.msisdn,
            "To": self.number,
            "CallStatus": "in-progress",
            "Direction": "inbound",
        }
        if digits:
            form["Digits"] = digits
        return form

    async def _post(self, path: str, digits: str) -> Reply:
        status, body = await self.gw.post_form(path, self._form(digits))
        if status != 200:
            raise PhoneError(f"POST {path}: HTTP {status}: {body.strip()}")
        reply = parse_twiml(body)
        # Twilio posts the Gather's action, or follows the Redirect on silence.
        root = ET.fromstring(body)  # noqa: S314 - the service's own TwiML
        gather, redirect = root.find("Gather"), root.find("Redirect")
        self._action = gather.get("action") if gather is not None else None
        self._redirect = (redirect.text or "").strip() if redirect is not None else None
        self.last = reply
        if reply.final:
            self.call_sid = None
        return reply


def notification_text(item: Mapping[str, Any]) -> str:
    """What an outbox item says: the text sent, or its event and data while pending."""
    delivery = item.get("delivery")
    if isinstance(delivery, Mapping) and delivery.get("text"):
        return str(delivery["text"])
    payload = item.get("payload") or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if k != "msisdn")
    return f"{item.get('event', '?')} ({item.get('status', 'pending')}): {shown}"


@dataclass
class SmsPhone:
    """Texts to and from the short number 4555."""

    gw: Gateway
    msisdn: str
    number: str = SMS_SHORT_NUMBER
    sent: int = 0
    seen_notifications: set[Any] = field(default_factory=set)
    last: Reply | None = None

    async def send(self, text: str) -> Reply:
        """Send one SMS; the reply text comes back in the response body."""
        self.sent += 1
        form = {
            "from": self.msisdn,
            "to": self.number,
            "text": text,
            "id": f"sim-{uuid.uuid4().hex[:12]}",
        }
        status, body = await self.gw.post_form(SMS_PATH, form)
        if status != 200:
            raise PhoneError(f"POST {SMS_PATH}: HTTP {status}: {body.strip()}")
        self.last = Reply(channel="sms", text=body.strip(), final=True, raw=body)
        return self.last

    async def notifications(self, *, only_new: bool = True) -> list[str]:
        """Texts queued for this number in the outbox (``GET /v1/outbox``)."""
        return [text for _, text in await self.notification_items(only_new=only_new)]

    async def notification_items(self, *, only_new: bool = True) -> list[tuple[Any, str]]:
        """(id, text) of the outbox messages to this number."""
        body = await self.gw.get_json(OUTBOX_PATH, {"msisdn": self.msisdn})
        items = body.get("items", []) if isinstance(body, dict) else body
        found: list[tuple[Any, str]] = []
        for item in items or []:
            if not isinstance(item, dict):
                continue
            if item.get("msisdn") not in (None, self.msisdn):
                continue
            ident = item.get("id")
            text = notification_text(item)
            if only_new and ident in self.seen_notifications:
                continue
            self.seen_notifications.add(ident)
            found.append((ident, text))
        return found


# --------------------------------------------------------------------------- serving


@contextlib.asynccontextmanager
async def serve_app(
    settings: Settings,
    *,
    menus: MenuRegistry | None = None,
    background: bool = False,
    app: web.Application | None = None,
) -> AsyncIterator[str]:
    """Serve the app (``app``, or one built from ``settings``) on a free loopback port.

    Yields its base URL. Leaving stops it, which also flushes its drop-off counters.
    """
    if app is None:
        app = create_app(settings, menus=menus, background=background)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with the simulator's timeouts."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def ensure_catalog(pool: Any) -> bool:
    """Load the default rewards catalogue when the ledger has none; True if loaded."""
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM rewards")
    if count:
        return False
    await ledger.load_catalog(pool)
    return True


# --------------------------------------------------------------------------- the terminal


class Terminal:
    """Line input and output (stdin/stdout by default; anything file-like in tests)."""

    def __init__(self, stdin: TextIO, stdout: TextIO, *, interactive: bool) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.interactive = interactive

    def say(self, text: str = "") -> None:
        """Print a line."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def ask(self, prompt: str) -> str | None:
        """One line of input (without its newline); None at end of input."""
        self.stdout.write(prompt)
        self.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        if not line:
            self.say()
            return None
        line = line.rstrip("\r\n")
        if not self.interactive:
            # Echo scripted input, so a transcript reads like a session by hand.
            self.stdout.write(line + "\n")
            self.stdout.flush()
        return line


def _help(channel: str) -> str:
    if channel == "ussd":
        return (
            "USSD phone. Enter: dial *111*455# (or type a code like *111*455*3#). "
            "In a session type your reply; /hangup ends it; q quits."
        )
    if channel == "ivr":
        return (
            "Voice line 0890. Enter: call. Then type keys (e.g. 1, or 89161234567#); "
            "an empty line waits out the timeout; /hangup hangs up; q quits."
        )
    return (
        f"SMS to {SMS_SHORT_NUMBER}. Type a message (e.g. BALANCE, GIFT 89161234567 100); q quits."
    )


async def run_ussd(term: Terminal, phone: UssdPhone, code: str) -> None:
    """The USSD loop: dial, show pages, read replies, until EOF or q."""
    while True:
        if not phone.in_session:
            line = await term.ask(f"dial [{code}]> ")
            if line is None or line.strip().lower() in QUIT_WORDS:
                return
            dialled = line.strip() or code
            if not (dialled.startswith("*") and dialled.endswith("#")):
                term.say(f"  (not a USSD code: {dialled!r}; codes look like {code})")
                continue
            term.say(render(await phone.dial(dialled)))
            continue
        line = await term.ask("reply> ")
        if line is None or line.strip().lower() in QUIT_WORDS:
            await phone.hang_up()
            return
        if line.strip().lower() in HANGUP_WORDS:
            await phone.hang_up()
            term.say("  (session ended by the handset)")
            continue
        term.say(render(await phone.send(line.strip())))


async def run_ivr(term: Terminal, phone: IvrPhone, number: str) -> None:
    """The IVR loop: call, hear prompts, press keys, until EOF or q."""
    while True:
        if not phone.in_session:
            line = await term.ask(f"call [{number}]> ")
            if line is None or line.strip().lower() in QUIT_WORDS:
                return
            term.say(render(await phone.dial(line.strip() or number)))
            continue
        line = await term.ask("keys> ")
        if line is None or line.strip().lower() in QUIT_WORDS:
            await phone.hang_up()
            return
        keys = line.strip()
        if keys.lower() in HANGUP_WORDS:
            await phone.hang_up()
            term.say("  (hung up)")
            continue
        if keys and not set(keys) <= set("0123456789*#"):
            term.say("  (only the keys 0-9, * and # exist on a phone)")
            continue
        reply = await phone.send(keys) if keys else await phone.wait()
        if not keys:
            term.say("  (no keys: timeout)")
        term.say(render(reply))


async def run_sms(term: Terminal, phone: SmsPhone) -> None:
    """The SMS loop: each line is one message to 4555."""
    with contextlib.suppress(PhoneError):
        await phone.notifications()  # what was queued before this session is old news
    while True:
        line = await term.ask(f"sms to {phone.number}> ")
        if line is None or line.strip().lower() in QUIT_WORDS:
            return
        if not line.strip():
            await _show_notifications(term, phone)
            continue
        term.say(render(await phone.send(line.strip())))
        await _show_notifications(term, phone)


async def _show_notifications(term: Terminal, phone: SmsPhone) -> None:
    try:
        texts = await phone.notifications()
    except PhoneError as exc:
        term.say(f"  (notifications unavailable: {exc})")
        return
    for text in texts:
        term.say(f"  [notification] {text}")


@dataclass(frozen=True)
class SimulatorOptions:
    """What ``simulate`` was asked to do."""

    channel: str = "ussd"
    msisdn: str = DEFAULT_MSISDN
    url: str | None = None
    language: str | None = None
    gateway: str = "africastalking"
    code: str | None = None


async def simulate_against(
    base_url: str, options: SimulatorOptions, term: Terminal, pool: Any | None = None
) -> None:
    """Run the phone of ``options.channel`` against the service at ``base_url``."""
    if options.language is not None:
        if pool is None:
            raise PhoneError("--lang needs the ledger: run in-process or set DATABASE_URL")
        await ledger.set_language(
            pool, options.msisdn, options.language, key=f"sim-lang-{uuid.uuid4().hex}"
        )
    async with http_session() as http:
        gw = Gateway(
            http,
            base_url,
            gateway_secret=os.environ.get(GATEWAY_SECRET_ENV) or None,
            api_token=os.environ.get(API_TOKEN_ENV) or None,
        )
        term.say(_help(options.channel))
        if options.channel == "ivr":
            number = options.code or DEFAULT_IVR_NUMBER
            await run_ivr(term, IvrPhone(gw, options.msisdn), number)
        elif options.channel == "sms":
            await run_sms(term, SmsPhone(gw, options.msisdn))
        else:
            code = options.code or DEFAULT_USSD_CODE
            await run_ussd(term, UssdPhone(gw, options.msisdn, gateway=options.gateway), code)


async def _with_pool(database_url: str | None, body: Callable[[Any], Any]) -> None:
    if database_url is None:
        await body(None)
        return
    import asyncpg  # noqa: PLC0415 - only when a database is at hand

    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    try:
        await body(pool)
    finally:
        await pool.close()


def run_simulator(options: SimulatorOptions, settings: Settings, term: Terminal) -> None:
    """Against ``options.url``, or in-process on the embedded servers."""
    if options.url is not None:
        asyncio.run(
            _with_pool(
                settings.database_url,
                lambda pool: simulate_against(options.url or "", options, term, pool),
            )
        )
        return
    with backing_servers(settings) as resolved:
        assert resolved.database_url
        asyncio.run(apply_migrations(resolved.database_url))

        async def in_process(pool: Any) -> None:
            if await ensure_catalog(pool):
                term.say("(loaded the default rewards catalogue into an empty ledger)")
            registry = MenuRegistry.from_file(resolved.menu_file, DIALOGUE_TEXTS)
            entry = registry.current.model.entry
            code = options.code or (
                entry.ivr.code if options.channel == "ivr" and entry.ivr else None
            )
            code = code or (entry.ussd.code if options.channel == "ussd" and entry.ussd else None)
            opts = SimulatorOptions(
                channel=options.channel,
                msisdn=options.msisdn,
                language=options.language,
                gateway=options.gateway,
                code=code,
            )
            async with serve_app(resolved, menus=registry) as base_url:
                await simulate_against(base_url, opts, term, pool)

        asyncio.run(_with_pool(resolved.database_url, in_process))


@click.command()
@click.option(
    "--channel", type=click.Choice(["ussd", "ivr", "sms"]), default="ussd", show_default=True
)
@click.option("--msisdn", default=DEFAULT_MSISDN, show_default=True, help="The phone's number.")
@click.option("--url", help="A running service (default: in-process on the embedded servers).")
@click.option("--lang", type=click.Choice(["ru", "en"]), help="Set the subscriber's language.")
@click.option(
    "--gateway",
    type=click.Choice(["africastalking", "native"]),
    default="africastalking",
    show_default=True,
    help="USSD dialect to speak.",
)
@click.option("--menu", "menu_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def simulate(
    *,
    channel: str,
    msisdn: str,
    url: str | None,
    lang: str | None,
    gateway: str,
    menu_file: Path | None,
    data_dir: Path | None,
) -> None:
    """A phone in the terminal: USSD pages, IVR prompts or SMS, read from stdin."""
    try:
        settings = load_settings(menu_file=menu_file, data_dir=data_dir)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # The terminal is the phone's screen: only warnings and errors, and on stderr.
    configure_logging(SIMULATOR_LOG_LEVEL, settings.log_format, stream=sys.stderr)
    try:
        number = normalise_msisdn(msisdn)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--msisdn") from None
    options = SimulatorOptions(
        channel=channel, msisdn=number, url=url, language=lang, gateway=gateway
    )
    term = Terminal(sys.stdin, sys.stdout, interactive=sys.stdin.isatty())
    try:
        run_simulator(options, settings, term)
    except (PhoneError, aiohttp.ClientError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        term.say()
