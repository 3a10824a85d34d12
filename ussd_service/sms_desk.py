# Cyrillic command words and their Latin look-alikes are the point of this module.
# ruff: noqa: RUF001, RUF002, RUF003
"""The SMS desk: commands on 4555 (join, gift, accept, decline, cancel, balance, help) answered.

The core beside ``dialogue``, with no HTTP in it: the SMS dialect
(``channels/sms.py``) parses the gateway's request into an ``InboundSms`` and
renders the reply text this desk chooses.

A subscriber texts ``DAR <number> <points>`` (or ``GIFT``, ``ДАР``,
``ПОДАРОК``) to gift points, the recipient answers ``DAR`` to accept the
oldest pending gift or ``NET`` (``NO``, ``НЕТ``) to decline it, ``BALANCE``
(``БАЛАНС``) shows the balance, ``ВСТУПИТЬ`` (``JOIN``, ``VSTUPIT``) joins the
programme (the ledger queues the welcome SMS), ``ОТМЕНА [<number>]``
(``OTMENA``, ``CANCEL``) takes back the sender's newest gift not yet answered
(to that number), and anything else gets the help
text (for a non-member: how to join) — never silence. A blocked subscriber
gets the ``blocked`` reply whatever they send. Replies are the ``sms.replies``
texts of the menu file, in the subscriber's language.

Exactly once: the gateway's message ``id`` names the ledger operation
(``sms:<id>:<command>``), so a redelivered SMS never gifts twice, and the first
reply for an id is kept in Redis (``redis_keys.SMS_REPLY_PREFIX``, a day) so every
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
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from redis.exceptions import RedisClusterException, RedisError

import ledger
from menus import MenuRegistry, render_sms
from menus.engine import Menu
from menus.errors import UnknownTemplateError
from session_store import RedisClient
from ussd_service.operations import UNAVAILABLE_ERRORS
from ussd_service.redis_keys import SMS_REPLY_PREFIX, SMS_REPLY_TTL_S

log = structlog.get_logger(__name__)

# The answer must reach the gateway well before its HTTP timeout.
SMS_DEADLINE_S = 5.0
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
# "OTMENA": ОТМЕНА typed in Latin transliteration.
CANCEL_WORDS = frozenset({"cancel", "otmena", "отмена"})
# "vstupit": ВСТУПИТЬ typed in Latin transliteration.
JOIN_WORDS = frozenset({"join", "вступить", "vstupit"})
# Joining by the English word makes a new subscriber's language English.
ENGLISH_JOIN_WORDS = frozenset({"join"})

# Latin letters that look like Cyrillic ones, for words typed in mixed scripts ("ДAР").
_LATIN_TO_CYRILLIC = str.maketrans("aceopxykmthb", "асеорхукмтнв")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_POINTS = re.compile(r"[0-9]{1,%d}" % MAX_POINTS_DIGITS)  # noqa: UP031 - a regex with braces
_EDGE_PUNCTUATION = ".,;:!\"'«»()"


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One SMS from a subscriber: ``msisdn`` in E.164, ``text`` with line breaks as spaces.

    ``message_id`` is the gateway's id, stable across its redeliveries.
    """

    msisdn: str
    to: str
    text: str
    message_id: str | None


class CommandKind(enum.StrEnum):
    """What an SMS asks for."""

    GIFT = "gift"
    ACCEPT = "accept"
    DECLINE = "decline"
    BALANCE = "balance"
    CANCEL = "cancel"
    JOIN = "join"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed SMS: ``recipient`` (as typed) for GIFT and CANCEL, ``points`` for GIFT.

    ``language`` is the language the command word was written in, when it says
    (JOIN: a newcomer gets their menus in it).
    """

    kind: CommandKind
    recipient: str | None = None
    points: int | None = None
    language: str | None = None


def _word(token: str) -> str:
    word = token.casefold().replace("ё", "е")
    if word != "?":
        word = word.strip(_EDGE_PUNCTUATION + "?")
    if _CYRILLIC.search(word):
        word = word.translate(_LATIN_TO_CYRILLIC)
    return word


def parse_command(text: str) -> Command:  # noqa: PLR0911 - one return per command word
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
    if word in CANCEL_WORDS:
        # The number is checked by the desk (its region); anything else is its usage reply.
        return Command(CommandKind.CANCEL, recipient=" ".join(args) or None)
    if word in JOIN_WORDS and not args:
        language = "en" if word in ENGLISH_JOIN_WORDS else "ru"
        return Command(CommandKind.JOIN, language=language)
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
BALANCE_EXPIRING = "balance_expiring"
_BALANCE_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.OK: "balance",
    ledger.Code.NOT_ENROLLED: "not_enrolled",
    ledger.Code.BLOCKED: "blocked",
}
_JOIN_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.OK: "join_ok",
    ledger.Code.ALREADY_ENROLLED: "join_already",
    ledger.Code.BLOCKED: "blocked",
}
# CANCEL [number]: the sender's newest pending gift (to that number) taken back.
_CANCEL_REPLIES: Mapping[ledger.Code, str] = {
    ledger.Code.OK: "cancel_ok",
    ledger.Code.NO_PENDING_GIFT: "cancel_none",
    ledger.Code.GIFT_EXPIRED: "cancel_none",
    ledger.Code.GIFT_NOT_PENDING: "cancel_none",
}
CANCEL_NONE_TO = "cancel_none_to"
CANCEL_USAGE = "cancel_usage"
HELP = "help"
# Help for a number that is not a member: how to join.
HELP_JOIN = "help_join"
BLOCKED = "blocked"
UNAVAILABLE = "unavailable"
# Every reply this module can choose; ``missing_replies`` checks a menu for them.
REPLY_NAMES = frozenset(
    {
        *_GIFT_REPLIES.values(),
        *_RESOLVE_REPLIES.values(),
        *_BALANCE_REPLIES.values(),
        *_CANCEL_REPLIES.values(),
        CANCEL_NONE_TO,
        CANCEL_USAGE,
        *_JOIN_REPLIES.values(),
        HELP_JOIN,
        "accept_ok",
        "accept_more",
        "decline_ok",
        "decline_more",
        BALANCE_EXPIRING,
        HELP,
        UNAVAILABLE,
    }
)


def local_variables(data: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """Placeholder values with moments (``*_at``) in the programme's time zone.

    Dates shown to subscribers are calendar days where they live, not in UTC
    (the outbox payload holds ISO strings, ledger values hold datetimes).
    """
    zone = ZoneInfo(timezone)
    out: dict[str, Any] = {}
    for key, value in data.items():
        moment = value
        if isinstance(value, str) and key.endswith("_at"):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = value
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            out[key] = moment.astimezone(zone)
        else:
            out[key] = value
    return out


def missing_replies(menu: Menu) -> list[str]:
    """Reply names this module needs that ``menu`` lacks (empty when complete)."""
    return sorted(REPLY_NAMES - set(menu.model.sms.replies))


@dataclass(frozen=True, slots=True)
class Reply:
    """A chosen reply: the template name and the text sent."""

    name: str
    text: str


class SmsDesk:
    """Answers SMS commands against the ledger, in the live menu's texts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        menus: MenuRegistry,
        *,
        redis: RedisClient | None = None,
        deadline_s: float = SMS_DEADLINE_S,
        clock: ledger.Clock = ledger.SYSTEM_CLOCK,
        settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
    ) -> None:
        self.pool = pool
        self.menus = menus
        self.redis = redis
        self.deadline_s = deadline_s
        self.clock = clock
        self.settings = settings

    async def answer(self, sms: InboundSms) -> str:
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

    async def _run(self, command: Command, sms: InboundSms) -> Reply:
        subscriber = await ledger.get_subscriber(self.pool, sms.msisdn, settings=self.settings)
        language = subscriber.language if subscriber else self.settings.default_language
        status = subscriber.status if subscriber else "not_enrolled"
        if status == "blocked":
            # Whatever they ask: the one answer the other channels give too.
            return Reply(BLOCKED, self._render(BLOCKED, language, {}))
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
                if outcome.ok and outcome.data.get("expiring_points", 0) > 0:
                    name = BALANCE_EXPIRING  # what expires when
            case CommandKind.JOIN:
                if subscriber is None and command.language in self.settings.languages:
                    language = command.language
                outcome = await ledger.enroll(
                    self.pool, sms.msisdn, key=key, language=language, channel="self", **common
                )
                name = _JOIN_REPLIES.get(outcome.code)
            case CommandKind.CANCEL:
                return await self._cancel(command, sms, language, key)
            case CommandKind.HELP:
                name = HELP if status == "active" else HELP_JOIN
                return Reply(name, self._render(name, language, {}))
        if name is None:
            # idempotency_conflict: the gateway reused a message id for another text.
            log.warning("sms_unexpected_code", command=command.kind.value, code=outcome.code.value)
            name = UNAVAILABLE
        variables = {**self._rules(), **local_variables(outcome.data, self.settings.timezone)}
        return Reply(name, self._render(name, language, variables))

    async def _cancel(self, command: Command, sms: InboundSms, language: str, key: str) -> Reply:
        """CANCEL [number]: the ledger picks the newest pending gift inside the operation,
        so a redelivery answers the first result instead of taking back the next gift."""
        to = None
        if command.recipient is not None:
            to = ledger.try_normalize_msisdn(command.recipient, self.settings.default_region)
            if to is None or len(command.recipient) > MAX_NUMBER_CHARS:
                return Reply(CANCEL_USAGE, self._render(CANCEL_USAGE, language, {}))
        # The reply tells the sender; a second SMS would say it again.
        outcome = await ledger.cancel_gift(
            self.pool,
            sms.msisdn,
            recipient=to,
            key=key,
            tell_sender=False,
            clock=self.clock,
            settings=self.settings,
        )
        name = _CANCEL_REPLIES.get(outcome.code, UNAVAILABLE)
        if name == "cancel_none" and to is not None:
            name = CANCEL_NONE_TO
        if name == UNAVAILABLE:
            # idempotency_conflict: the gateway reused a message id for another text.
            log.warning("sms_unexpected_code", command=command.kind.value, code=outcome.code.value)
        variables = {"recipient": to, **outcome.data}
        return Reply(name, self._render(name, language, variables))

    def _rules(self) -> dict[str, Any]:
        """The ledger's gift rules, for replies that state them (``{minimum}``..``{maximum}``)."""
        settings = self.settings
        return {
            "minimum": settings.gift_min_points,
            "maximum": settings.gift_max_points,
            "cap": settings.gift_daily_cap_points,
        }

    def _key(self, sms: InboundSms, command: Command) -> str:
        # Without a gateway id there is nothing to recognise a redelivery by.
        message_id = sms.message_id or f"anon-{uuid.uuid4().hex}"
        return f"{LEDGER_KEY_PREFIX}{message_id}:{command.kind.value}"

    def _render(self, name: str, language: str, variables: Mapping[str, Any]) -> str:
        menu = self.menus.current
        try:
            return render_sms(menu, name, language, variables)
        except UnknownTemplateError:
            log.exception("sms_reply_missing", reply=name)
            return render_sms(menu, HELP, language, {})

    # -- the reply kept per message id --------------------------------------------

    async def _cached(self, key: str) -> str | None:
        if self.redis is None:
            return None
        try:
            async with asyncio.timeout(REPLY_CACHE_DEADLINE_S):
                value = await self.redis.get(key)
        except (RedisError, RedisClusterException, OSError) as exc:  # OSError covers TimeoutError
            log.warning("sms_reply_cache_unavailable", error=type(exc).__name__)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def _keep(self, key: str, text: str) -> str:
        """Keep ``text`` unless a concurrent delivery kept one first; return the kept one."""
        if self.redis is None:
            return text
        try:
            async with asyncio.timeout(REPLY_CACHE_DEADLINE_S):
                if await self.redis.set(key, text, nx=True, ex=SMS_REPLY_TTL_S):
                    return text
                kept = await self.redis.get(key)
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning("sms_reply_cache_unavailable", error=type(exc).__name__)
            return text
        if kept is None:
            return text
        return kept.decode() if isinstance(kept, bytes) else str(kept)


def reply_key(msisdn: str, message_id: str) -> str:
    """Redis key of the reply to one message (hashed: no phone number in key names)."""
    digest = hashlib.sha256(f"{msisdn}\x00{message_id}".encode()).hexdigest()[:32]
    return SMS_REPLY_PREFIX + digest
