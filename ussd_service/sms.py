# Cyrillic command words and their Latin look-alikes are the point of this module.
# ruff: noqa: RUF001, RUF002, RUF003
"""SMS commands on 4555: gift, accept, decline, balance, help.

A subscriber texts ``DAR <number> <points>`` (or ``GIFT``, ``ДАР``,
``ПОДАРОК``) to gift points, the recipient answers ``DAR`` to accept the
oldest pending gift or ``NET`` (``NO``, ``НЕТ``) to decline it, ``BALANCE``
(``БАЛАНС``) shows the balance, and anything else gets the help text — never
silence. Replies are the ``sms.replies`` texts of the menu file, in the
subscriber's language.

Exactly once: the gateway's message ``id`` names the ledger operation
(``sms:<id>:<command>``), so a redelivered SMS never gifts twice, and the first
reply for an id is kept in Redis (``sms:reply:...``, a day) so every
redelivery, even a concurrent one, gets the very same text. A reply saying
the service is unavailable is never kept: the gateway's retry tries again.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis.exceptions import RedisError

import ledger
from menus import render_sms
from menus.engine import Menu
from menus.errors import UnknownTemplateError
from ussd_service import notifier
from ussd_service.auth import check_gateway
from ussd_service.channels import sms as channel
from ussd_service.channels.forms import bad_request
from ussd_service.hop import MalformedRequestError
from ussd_service.keys import MENUS, PG_POOL, REDIS, SETTINGS
from ussd_service.operations import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

# The answer must reach the gateway well before its HTTP timeout.
SMS_DEADLINE_S = 5.0
# Replies kept for redeliveries of the same message id.
REPLY_KEY_PREFIX = "sms:reply:"
REPLY_TTL_S = 24 * 3600
# A frozen Redis must not hold the answer: without the kept reply the ledger's
# idempotency still prevents a second gift.
REPLY_CACHE_DEADLINE_S = 0.5
# Ledger idempotency keys: ``sms:<gateway message id>:<command>``.
LEDGER_KEY_PREFIX = "sms:"
# Bounds of what reads as "<number> <points>".
MAX_POINTS_DIGITS = 9
MAX_NUMBER_CHARS = 32

GIFT_WORDS = frozenset({"dar", "gift", "дар", "подарок"})
DECLINE_WORDS = frozenset({"net", "no", "нет", "het"})  # "HET": НЕТ typed in Latin look-alikes
BALANCE_WORDS = frozenset({"balance", "баланс"})
HELP_WORDS = frozenset({"help", "помощь", "?"})

# Latin letters that look like Cyrillic ones, for words typed in mixed scripts ("ДAР").
_LATIN_TO_CYRILLIC = str.maketrans("aceopxykmthb", "асеорхукмтнв")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_POINTS = re.compile(r"[0-9]{1,%d}" % MAX_POINTS_DIGITS)  # noqa: UP031 - a regex with braces
_EDGE_PUNCTUATION = ".,;:!\"'«»()"


class CommandKind(enum.StrEnum):
    """What an SMS asks for."""

    GIFT = "gift"
    ACCEPT = "accept"
    DECLINE = "decline"
    BALANCE = "balance"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed SMS: ``recipient`` (as typed) and ``points`` for GIFT only."""

    kind: CommandKind
    recipient: str | None = None
    points: int | None = None


def _word(token: str) -> str:
    word = token.casefold().replace("ё", "е")
    if word != "?":
        word = word.strip(_EDGE_PUNCTUATION + "?")
    if _CYRILLIC.search(word):
        word = word.translate(_LATIN_TO_CYRILLIC)
    return word


def parse_command(text: str) -> Command:
    """The command in an SMS text; HELP for anything that is not one.

    ``<word> <number...> <points>``: the last token is the points, everything
    between is the number as typed (``+7 916 123-45-67`` has spaces).
    """
    tokens = text.split()
    if not tokens:
        return Command(CommandKind.HELP)
    word, args = _word(tokens[0]), tokens[1:]
    if word in GIFT_WORDS:
        return _gift_command(args) if args else Command(CommandKind.ACCEPT)
    if word in DECLINE_WORDS and not args:
        return Command(CommandKind.DECLINE)
    if word in BALANCE_WORDS:
        return Command(CommandKind.BALANCE)
    return Command(CommandKind.HELP)


def _gift_command(args: list[str]) -> Command:
    points = args[-1].rstrip(_EDGE_PUNCTUATION)
    number = " ".join(args[:-1])
    if not _POINTS.fullmatch(points) or not number or len(number) > MAX_NUMBER_CHARS:
        return Command(CommandKind.HELP)
    return Command(CommandKind.GIFT, recipient=number, points=int(points))


# -- replies ------------------------------------------------------------------

# Reply names per ledger code (``sms.replies`` in the menu file).
_GIFT_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.OK: "gift_ok",
    **{
        code: f"gift_{code.value}"
        for code in (
            ledger.Code.NOT_ENROLLED,
            ledger.Code.BLOCKED,
            ledger.Code.INVALID_RECIPIENT,
            ledger.Code.SELF_GIFT,
            ledger.Code.BELOW_MINIMUM,
            ledger.Code.ABOVE_MAXIMUM,
            ledger.Code.RECIPIENT_NOT_ENROLLED,
            ledger.Code.DAILY_CAP_EXCEEDED,
            ledger.Code.INSUFFICIENT_POINTS,
        )
    },
}
_RESOLVE_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.NO_PENDING_GIFT: "no_pending_gift",
    ledger.Code.GIFT_EXPIRED: "no_pending_gift",
    ledger.Code.GIFT_NOT_PENDING: "no_pending_gift",
}
_BALANCE_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.OK: "balance",
    ledger.Code.NOT_ENROLLED: "not_enrolled",
    ledger.Code.BLOCKED: "blocked",
}
HELP = "help"
UNAVAILABLE = "unavailable"
# Every reply this module can choose; ``missing_replies`` checks a menu for them.
REPLY_NAMES = frozenset(
    {
        *_GIFT_REPLIES.values(),
        *_RESOLVE_REPLIES.values(),
        *_BALANCE_REPLIES.values(),
        "accept_ok",
        "accept_more",
        "decline_ok",
        "decline_more",
        HELP,
        UNAVAILABLE,
    }
)


def missing_replies(menu: Menu) -> list[str]:
    """Reply names this module needs that ``menu`` lacks (empty when complete)."""
    return sorted(REPLY_NAMES - set(menu.model.sms.replies))


@dataclass(frozen=True, slots=True)
class Reply:
    """A chosen reply: the template name and the text sent."""

    name: str
    text: str


class SmsDesk:
    """Answers SMS commands against the ledger; built per request from the app's pools."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        menu: Menu,
        *,
        redis: aioredis.Redis | None = None,
        deadline_s: float = SMS_DEADLINE_S,
        clock: ledger.Clock = ledger.SYSTEM_CLOCK,
        settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
    ) -> None:
        self.pool = pool
        self.menu = menu
        self.redis = redis
        self.deadline_s = deadline_s
        self.clock = clock
        self.settings = settings

    async def answer(self, sms: channel.InboundSms) -> str:
        """The reply text for ``sms``; the same text for every delivery of one message id."""
        command = parse_command(sms.text)
        cache_key = reply_key(sms.msisdn, sms.message_id) if sms.message_id else None
        if cache_key is not None:
            cached = await self._cached(cache_key)
            if cached is not None:
                log.info("sms_answered", command=command.kind.value, replayed=True)
                return cached
        try:
            async with asyncio.timeout(self.deadline_s):
                reply = await self._run(command, sms)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("sms_unavailable", command=command.kind.value, error=type(exc).__name__)
            # Help needs no ledger, only the language: the default one will do.
            name = HELP if command.kind is CommandKind.HELP else UNAVAILABLE
            return self._render(name, self.settings.default_language, {})
        log.info("sms_answered", command=command.kind.value, reply=reply.name, replayed=False)
        if cache_key is None or reply.name == UNAVAILABLE:
            return reply.text
        return await self._keep(cache_key, reply.text)

    # -- one ledger call per command -----------------------------------------------

    async def _run(self, command: Command, sms: channel.InboundSms) -> Reply:
        subscriber = await ledger.get_subscriber(self.pool, sms.msisdn, settings=self.settings)
        language = subscriber.language if subscriber else self.settings.default_language
        key = self._key(sms, command)
        common: dict[str, Any] = {"clock": self.clock, "settings": self.settings}
        outcome: ledger.Outcome[Any]
        match command.kind:
            case CommandKind.GIFT:
                assert command.recipient is not None
                assert command.points is not None
                outcome = await ledger.gift(
                    self.pool, sms.msisdn, command.recipient, command.points, key=key, **common
                )
                name = _GIFT_REPLIES.get(outcome.code)
            case CommandKind.ACCEPT:
                outcome = await ledger.accept_gift(self.pool, sms.msisdn, key=key, **common)
                more = outcome.ok and outcome.data.get("remaining", 0) > 0
                name = ("accept_more" if more else "accept_ok") if outcome.ok else None
                name = name or _RESOLVE_REPLIES.get(outcome.code)
            case CommandKind.DECLINE:
                outcome = await ledger.decline_gift(self.pool, sms.msisdn, key=key, **common)
                more = outcome.ok and outcome.data.get("remaining", 0) > 0
                name = ("decline_more" if more else "decline_ok") if outcome.ok else None
                name = name or _RESOLVE_REPLIES.get(outcome.code)
            case CommandKind.BALANCE:
                outcome = await ledger.balance(self.pool, sms.msisdn, **common)
                name = _BALANCE_REPLIES.get(outcome.code)
            case CommandKind.HELP:
                return Reply(HELP, self._render(HELP, language, {}))
        if name is None:
            # idempotency_conflict: the gateway reused a message id for another text.
            log.warning("sms_unexpected_code", command=command.kind.value, code=outcome.code.value)
            name = UNAVAILABLE
        variables = notifier.local_variables(outcome.data, self.settings.timezone)
        return Reply(name, self._render(name, language, variables))

    def _key(self, sms: channel.InboundSms, command: Command) -> str:
        # Without a gateway id there is nothing to recognise a redelivery by.
        message_id = sms.message_id or f"anon-{uuid.uuid4().hex}"
        return f"{LEDGER_KEY_PREFIX}{message_id}:{command.kind.value}"

    def _render(self, name: str, language: str, variables: Mapping[str, Any]) -> str:
        try:
            return render_sms(self.menu, name, language, variables)
        except UnknownTemplateError:
            log.exception("sms_reply_missing", reply=name)
            return render_sms(self.menu, HELP, language, {})

    # -- the reply kept per message id --------------------------------------------

    async def _cached(self, key: str) -> str | None:
        if self.redis is None:
            return None
        try:
            async with asyncio.timeout(REPLY_CACHE_DEADLINE_S):
                value = await self.redis.get(key)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            log.warning("sms_reply_cache_unavailable", error=type(exc).__name__)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def _keep(self, key: str, text: str) -> str:
        """Keep ``text`` unless a concurrent delivery kept one first; return the kept one."""
        if self.redis is None:
            return text
        try:
            async with asyncio.timeout(REPLY_CACHE_DEADLINE_S):
                if await self.redis.set(key, text, nx=True, ex=REPLY_TTL_S):
                    return text
                kept = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            log.warning("sms_reply_cache_unavailable", error=type(exc).__name__)
            return text
        if kept is None:
            return text
        return kept.decode() if isinstance(kept, bytes) else str(kept)


def reply_key(msisdn: str, message_id: str) -> str:
    """Redis key of the reply to one message (hashed: no phone number in key names)."""
    digest = hashlib.sha256(f"{msisdn}\x00{message_id}".encode()).hexdigest()[:32]
    return REPLY_KEY_PREFIX + digest


# -- HTTP -------------------------------------------------------------------------


def desk(app: web.Application) -> SmsDesk:
    """The desk over the application's pools and live menu."""
    return SmsDesk(
        app[PG_POOL],
        app[MENUS].current,
        redis=app[REDIS],
        settings=app[SETTINGS].ledger_settings(),
    )


async def sms_inbound(request: web.Request) -> web.StreamResponse:
    """An SMS to 4555: the response body is the answer SMS."""
    check_gateway(request)
    try:
        sms = await channel.parse(request)
    except MalformedRequestError as exc:
        return bad_request(str(exc))
    return channel.render(await desk(request.app).answer(sms))


def add_routes(app: web.Application) -> None:
    """Register ``POST /sms/inbound`` and ``GET /v1/outbox``."""
    app.router.add_post(channel.PATH, sms_inbound, name="sms_inbound")
    app.router.add_get(notifier.OUTBOX_PATH, notifier.list_outbox, name="outbox")


_STR = {"type": "string"}
_TEXT_400 = {
    "description": "malformed request; the body says why in one line",
    "content": {"text/plain": {"schema": _STR}},
}
_AUTH_ERRORS = {
    "401": {"description": "missing or wrong credentials"},
    "403": {"description": "no credentials configured and the client is not on loopback"},
}
_OUTBOX_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "event": {"type": "string", "enum": list(ledger.outbox.EVENTS)},
        "msisdn": {"type": "string", "description": "E.164"},
        "payload": {"type": "object"},
        "status": {"type": "string", "enum": list(notifier.OUTBOX_STATUSES)},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": "string", "format": "date-time"},
        "last_error": {"type": ["string", "null"], "description": "why the last try failed"},
        "created_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "delivery": {
            "type": ["object", "null"],
            "description": "how a sent message went out: via the SMS gateway, or logged "
            "(no gateway configured); null when unknown (record expired or not sent)",
            "properties": {
                "via": {"type": "string", "enum": ["gateway", "log"]},
                "text": _STR,
                "at": {"type": "string", "format": "date-time"},
            },
        },
    },
}

# Paths for ``openapi.PATHS`` (same style).
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    channel.PATH: {
        "post": {
            "summary": "An SMS to 4555, as an SMS gateway's HTTP service delivers it.",
            "description": "Commands (any case, Latin or Cyrillic): `DAR|GIFT|ДАР|ПОДАРОК "
            "<number> <points>` gifts points; `DAR` alone accepts the oldest pending gift; "
            "`NET|NO|НЕТ` declines it; `BALANCE|БАЛАНС`; anything else gets the help text. "
            "The same `id` (the gateway's message id) is answered once: a redelivery gets "
            "the same reply and moves no points again.",
            "tags": ["gateways"],
            "security": [{"gatewayToken": []}, {"gatewayBasic": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "from": {"type": "string", "description": "the sender's number"},
                                "to": {"type": "string", "description": "the short number"},
                                "text": {"type": "string", "maxLength": channel.MAX_SMS_TEXT},
                                "id": {
                                    "type": "string",
                                    "maxLength": channel.MAX_MESSAGE_ID,
                                    "description": "gateway message id, stable across "
                                    "redeliveries: exactly-once answers",
                                },
                            },
                            "required": ["from", "to", "text"],
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "the answer SMS",
                    "content": {"text/plain": {"schema": _STR}},
                },
                "400": _TEXT_400,
                "413": {"description": "body too large"},
                **_AUTH_ERRORS,
            },
        }
    },
    notifier.OUTBOX_PATH: {
        "get": {
            "summary": "Notifications of the outbox (SMS to subscribers), oldest first.",
            "description": "`status=failed` lists messages parked after repeated failures, "
            "with the reason in `last_error`.",
            "tags": ["operators"],
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(notifier.OUTBOX_STATUSES)},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": notifier.MAX_OUTBOX_LIMIT,
                        "default": notifier.DEFAULT_OUTBOX_LIMIT,
                    },
                },
            ],
            "responses": {
                "200": {
                    "description": "messages",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"items": {"type": "array", "items": _OUTBOX_ITEM}},
                            }
                        }
                    },
                },
                "400": {"description": "unknown status or bad limit"},
                "503": {"description": "the ledger database is unreachable"},
                **_AUTH_ERRORS,
            },
        }
    },
}
