"""Conversation tests: YAML files in which menu designers write what a session must look like.

A file holds conversations; each is run for every channel and language it
names, against a real app over HTTP (the same phones as ``simulate``), after
setting up the subscriber's state in the ledger::

    defaults: {channel: ussd, languages: [ru, en], msisdn: "+79161000001"}
    conversations:
      - name: balance
        given: {enrolled: true, balance: 1250}
        steps:
          - dial                               # the channel's code; or dial: "*111*455*1#"
          - expect: {ru: "Бонусы", en: "Bonus points"}
          - send: "1"
          - expect_regex: {ru: "Баланс: 1.250", en: "Balance: 1,250"}
          - expect_balance: 1250

Steps: ``dial [code]``, ``send KEYS``, ``timeout`` (IVR: press nothing),
``hangup``, ``sms TEXT``; ``expect TEXT`` (contains), ``expect_regex RE``,
``expect_not TEXT``, ``expect_exact TEXT``, ``expect_end``, ``expect_continue``,
``expect_operator``, ``expect_balance N``, ``expect_balance_change +/-N``,
``expect_notification TEXT`` (outbox, SMS); ``do ACTION`` changes the ledger
behind the session's back (``block``, ``enroll``, ``decline_pending_gifts``,
``withdraw_rewards``, ``accrue: N``). Any text may be a mapping by language.

``given``: ``enrolled``, ``status: blocked``, ``balance``, ``pending_gifts:
[{from, points}]``, ``sent_gifts: [{to, points}]``, ``subscribers: {NUMBER:
{enrolled, balance}}`` (other numbers), ``catalog: default|none``,
``ledger: down`` (the app's database is unreachable).

Run under pytest (``tests/conversations/conftest.py`` collects each file) or
alone: ``ussd-service test-conversations [FILES] [--menu FILE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import click
import redis.asyncio as aioredis
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

import ledger
from ledger.migrations import migrate
from menus import MenuError, MenuRegistry
from ussd_service.backends import SCHEMA_PACKAGES
from ussd_service.config import Settings
from ussd_service.dialogue import DIALOGUE_TEXTS
from ussd_service.embedded import EmbeddedServers
from ussd_service.hop import normalise_msisdn
from ussd_service.simulator import (
    DEFAULT_IVR_NUMBER,
    DEFAULT_USSD_CODE,
    Gateway,
    IvrPhone,
    PhoneError,
    Reply,
    SmsPhone,
    UssdPhone,
    http_session,
    render,
    serve_app,
)

CHANNELS = ("ussd", "ivr", "sms")
DEFAULT_CHANNEL = "ussd"
DEFAULT_LANGUAGES = ("ru",)
DEFAULT_MSISDN = "+79161000001"
CONVERSATION_GLOB = "*.yaml"
# A database URL whose server cannot exist: ``ledger: down``.
UNREACHABLE_DB_HOST = "/nonexistent-ussd-ledger"
# How long expect_notification waits for the outbox to show a message.
NOTIFICATION_WAIT_S = 3.0
NOTIFICATION_POLL_S = 0.1
TEMPLATE_DB = "ussd_conversations_template"
# Steps that take no argument (a bare word in the YAML list).
BARE_STEPS = frozenset(
    {"dial", "timeout", "hangup", "expect_end", "expect_continue", "expect_operator"}
)
ARG_STEPS = frozenset(
    {
        "dial",
        "send",
        "sms",
        "expect",
        "expect_regex",
        "expect_not",
        "expect_exact",
        "expect_balance",
        "expect_balance_change",
        "expect_notification",
        "do",
    }
)
DO_ACTIONS = frozenset({"block", "enroll", "decline_pending_gifts", "withdraw_rewards", "accrue"})
GIVEN_FIELDS = frozenset(
    {
        "enrolled",
        "status",
        "balance",
        "pending_gifts",
        "sent_gifts",
        "subscribers",
        "catalog",
        "ledger",
    }
)
CONVERSATION_FIELDS = frozenset(
    {"name", "channel", "channels", "language", "languages", "msisdn", "gateway", "given", "steps"}
)
_keys = itertools.count(1)


class ConversationFileError(ValueError):
    """A conversation file that cannot be read; the message has FILE:LINE."""


class ConversationFailedError(AssertionError):
    """A conversation did not go as written; ``str()`` is the readable report."""


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Step:
    """One step: ``kind`` with its argument (a text may be a mapping by language)."""

    kind: str
    arg: Any
    line: int

    def text(self, language: str) -> Any:
        """The argument in ``language`` when it is a mapping by language."""
        if isinstance(self.arg, Mapping) and self.kind != "do":
            if language not in self.arg:
                raise ConversationFailedError(
                    f"line {self.line}: {self.kind} has no text for language {language!r}"
                )
            return self.arg[language]
        return self.arg

    def describe(self, language: str) -> str:
        """The step as written, in one line."""
        value = self.text(language)
        if value is None or value is True:
            return self.kind
        return (
            f"{self.kind}: {value!r}" if self.kind.startswith("expect") else f"{self.kind} {value}"
        )


@dataclass(frozen=True)
class Conversation:
    """One conversation on one channel in one language (an expanded test case)."""

    name: str
    file: Path
    line: int
    channel: str
    language: str
    msisdn: str
    gateway: str
    given: Mapping[str, Any]
    steps: tuple[Step, ...]

    @property
    def test_id(self) -> str:
        """``name[channel-language]``."""
        return f"{self.name}[{self.channel}-{self.language}]"

    @property
    def where(self) -> str:
        """``FILE:LINE`` of the conversation."""
        return f"{shown_path(self.file)}:{self.line}"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _line(node: Any, default: int) -> int:
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else default


def _as_list(value: Any, name: str, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConversationFileError(f"{where}: {name} must be a name or a list of names")


def _parse_step(raw: Any, line: int, where: str) -> Step:
    if isinstance(raw, str):
        if raw not in BARE_STEPS:
            raise ConversationFileError(f"{where}: unknown step {raw!r}")
        return Step(raw, None, line)
    if isinstance(raw, Mapping) and len(raw) == 1:
        kind, arg = next(iter(raw.items()))
        if kind not in ARG_STEPS and kind not in BARE_STEPS:
            known = ", ".join(sorted(ARG_STEPS | BARE_STEPS))
            raise ConversationFileError(f"{where}: unknown step {kind!r} (known: {known})")
        arg = _plain(arg)
        if kind == "do":
            action = next(iter(arg)) if isinstance(arg, Mapping) else arg
            if action not in DO_ACTIONS:
                raise ConversationFileError(
                    f"{where}: unknown do action {action!r} (known: {sorted(DO_ACTIONS)})"
                )
        if kind in {"send", "sms"} and isinstance(arg, int | float):
            arg = str(arg)
        return Step(str(kind), arg, line)
    raise ConversationFileError(f"{where}: a step is a name or a one-key mapping, not {raw!r}")


def _expand(
    raw: Mapping[str, Any], defaults: Mapping[str, Any], path: Path, line: int
) -> list[Conversation]:
    where = f"{path}:{line}"
    unknown = set(raw) - CONVERSATION_FIELDS
    if unknown:
        raise ConversationFileError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConversationFileError(f"{where}: name must be letters, digits, _ . - (got {name!r})")
    merged = {**defaults, **raw}
    channels = _as_list(
        merged.get("channels", merged.get("channel", DEFAULT_CHANNEL)), "channel", where
    )
    languages = _as_list(
        merged.get("languages", merged.get("language", list(DEFAULT_LANGUAGES))),
        "language",
        where,
    )
    for channel in channels:
        if channel not in CHANNELS:
            raise ConversationFileError(f"{where}: unknown channel {channel!r}")
    # A conversation's own ``given`` replaces the file's default state whole.
    given = _plain(raw["given"] if "given" in raw else defaults.get("given")) or {}
    if set(given) - GIVEN_FIELDS:
        raise ConversationFileError(
            f"{where}: unknown given field(s) {sorted(set(given) - GIVEN_FIELDS)}"
        )
    try:
        msisdn = normalise_msisdn(str(merged.get("msisdn", DEFAULT_MSISDN)))
    except ValueError as exc:
        raise ConversationFileError(f"{where}: {exc}") from None
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConversationFileError(f"{where}: steps must be a non-empty list")
    steps = []
    for index, item in enumerate(raw_steps):
        step_line = line
        if isinstance(raw_steps, CommentedSeq):
            step_line = int(raw_steps.lc.item(index)[0]) + 1
        steps.append(_parse_step(item, step_line, f"{path}:{step_line}"))
    return [
        Conversation(
            name=name,
            file=path,
            line=line,
            channel=channel,
            language=language,
            msisdn=msisdn,
            gateway=str(merged.get("gateway", "africastalking")),
            given=given,
            steps=tuple(steps),
        )
        for channel in channels
        for language in languages
    ]


def load_file(path: Path) -> list[Conversation]:
    """Every conversation of a file, expanded per channel and language."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ConversationFileError(f"{path}: {exc}") from None
    if not isinstance(data, CommentedMap) or "conversations" not in data:
        raise ConversationFileError(f"{path}:1: expected a mapping with 'conversations'")
    defaults = data.get("defaults") or {}
    items = data["conversations"]
    if not isinstance(items, CommentedSeq):
        raise ConversationFileError(f"{path}: conversations must be a list")
    found: list[Conversation] = []
    seen: set[str] = set()
    for index, raw in enumerate(items):
        line = int(items.lc.item(index)[0]) + 1
        if not isinstance(raw, Mapping):
            raise ConversationFileError(f"{path}:{line}: a conversation is a mapping")
        for conversation in _expand(raw, defaults, path, line):
            if conversation.test_id in seen:
                raise ConversationFileError(f"{path}:{line}: duplicate {conversation.test_id}")
            seen.add(conversation.test_id)
            found.append(conversation)
    return found


# --------------------------------------------------------------------------- running


@dataclass
class ConversationEnv:
    """Where conversations run: settings with both URLs, a pool on the same database."""

    settings: Settings
    pool: asyncpg.Pool
    menus: MenuRegistry | None = None


@dataclass
class _Turn:
    action: str
    reply: Reply | None = None
    note: str | None = None


@dataclass
class _Run:
    conversation: Conversation
    env: ConversationEnv
    gw: Gateway
    turns: list[_Turn] = field(default_factory=list)
    baseline: int = 0
    last: Reply | None = None
    phone: UssdPhone | IvrPhone | SmsPhone | None = None


def mask(msisdn: str) -> str:
    """``+7916*****01``: numbers in reports are masked like in logs."""
    return msisdn[:5] + "*" * max(0, len(msisdn) - 7) + msisdn[-2:]


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def failure_report(run: _Run, step: Step, problem: str) -> str:
    """The readable failure: where, what was expected, the conversation so far, the screen."""
    conv = run.conversation
    head = (
        f"conversation {conv.test_id} ({mask(conv.msisdn)}) failed\n"
        f"  at {shown_path(conv.file)}:{step.line}: {step.describe(conv.language)}\n"
        f"  {problem}"
    )
    lines = [head, "", "conversation so far:"]
    for turn in run.turns:
        lines.append(f"  > {turn.action}")
        if turn.note:
            lines.append(f"    ({turn.note})")
        if turn.reply is not None and turn.reply is run.last:
            lines.append("    (the screen below)")
        elif turn.reply is not None:
            lines.append(_indent(render(turn.reply)))
    if run.last is not None:
        lines += ["", "screen that did not match:", _indent(render(run.last))]
    return "\n".join(lines)


def _key(tag: str) -> str:
    return f"conv-{tag}-{uuid.uuid4().hex[:12]}-{next(_keys)}"


async def _available(pool: asyncpg.Pool, msisdn: str) -> int:
    summary = await ledger.subscriber_summary(pool, msisdn)
    return 0 if summary is None else int(summary.balance.available)


async def _setup_subscriber(
    pool: asyncpg.Pool, msisdn: str, spec: Mapping[str, Any], language: str | None
) -> None:
    if language is not None:
        await ledger.set_language(pool, msisdn, language, key=_key("lang"))
    if spec.get("enrolled") or spec.get("balance"):
        await ledger.enroll(pool, msisdn, key=_key("enroll"))
    if spec.get("balance"):
        await ledger.accrue(
            pool, msisdn, int(spec["balance"]), key=_key("accrue"), reason="conversation"
        )
    if spec.get("status") == "blocked":
        await ledger.block(pool, msisdn, key=_key("block"))


async def apply_given(conv: Conversation, pool: asyncpg.Pool) -> None:
    """Put the ledger in the state the conversation starts from."""
    given = conv.given
    if given.get("catalog", "default") == "default":
        await ledger.load_catalog(pool)
    others: Mapping[str, Any] = given.get("subscribers") or {}
    for number, spec in others.items():
        await _setup_subscriber(pool, normalise_msisdn(str(number)), spec or {}, None)
    status = given.get("status")
    mine = {
        "enrolled": given.get("enrolled", False) or status == "blocked",
        "balance": given.get("balance", 0),
        "status": status,
    }
    await _setup_subscriber(pool, conv.msisdn, mine, conv.language)
    for gift in given.get("pending_gifts") or []:
        sender = normalise_msisdn(str(gift["from"]))
        points = int(gift["points"])
        await ledger.enroll(pool, sender, key=_key("enroll"))
        await ledger.accrue(pool, sender, points, key=_key("accrue"), reason="conversation")
        outcome = await ledger.gift(pool, sender, conv.msisdn, points, key=_key("gift"))
        if outcome.code.value != "ok":
            raise ConversationFailedError(f"{conv.where}: given pending gift: {outcome.code.value}")
    for gift in given.get("sent_gifts") or []:
        recipient = normalise_msisdn(str(gift["to"]))
        await ledger.enroll(pool, recipient, key=_key("enroll"))
        outcome = await ledger.gift(
            pool, conv.msisdn, recipient, int(gift["points"]), key=_key("g")
        )
        if outcome.code.value != "ok":
            raise ConversationFailedError(f"{conv.where}: given sent gift: {outcome.code.value}")


def _ledger_down(settings: Settings) -> Settings:
    parts = urlsplit(settings.database_url or "postgresql://postgres@/ussd")
    query = f"host={UNREACHABLE_DB_HOST}"
    return settings.model_copy(
        update={"database_url": urlunsplit(parts._replace(netloc="postgres@", query=query))}
    )


async def run_conversation(conv: Conversation, env: ConversationEnv) -> None:
    """Run one conversation; raises ConversationFailedError with a readable report."""
    await apply_given(conv, env.pool)
    settings = env.settings
    if conv.given.get("ledger") == "down":
        settings = _ledger_down(settings)
    async with serve_app(settings, menus=env.menus) as base_url, http_session() as http:
        gw = Gateway(http, base_url)
        run = _Run(conv, env, gw, baseline=await _available(env.pool, conv.msisdn))
        for step in conv.steps:
            try:
                await _do_step(run, step)
            except ConversationFailedError as exc:
                raise ConversationFailedError(failure_report(run, step, str(exc))) from None
            except (PhoneError, OSError) as exc:
                raise ConversationFailedError(
                    failure_report(run, step, f"the service failed: {exc}")
                ) from None


def _phone(run: _Run) -> UssdPhone | IvrPhone | SmsPhone:
    conv = run.conversation
    if run.phone is None:
        if conv.channel == "ivr":
            run.phone = IvrPhone(run.gw, conv.msisdn)
        elif conv.channel == "sms":
            run.phone = SmsPhone(run.gw, conv.msisdn)
        else:
            run.phone = UssdPhone(run.gw, conv.msisdn, gateway=conv.gateway)
    return run.phone


def _screen(run: _Run) -> Reply:
    if run.last is None:
        raise ConversationFailedError("nothing on the screen yet: dial (or send an SMS) first")
    return run.last


async def _interact(run: _Run, step: Step, value: Any) -> None:
    phone = _phone(run)
    kind = step.kind
    reply: Reply | None
    if kind == "dial":
        if isinstance(phone, SmsPhone):
            raise ConversationFailedError("SMS conversations send texts (sms), they do not dial")
        default = DEFAULT_IVR_NUMBER if isinstance(phone, IvrPhone) else DEFAULT_USSD_CODE
        code = str(value) if value not in (None, True) else default
        reply = await phone.dial(code)
        action = f"dial {code}"
    elif kind in {"send", "sms"}:
        text = str(value)
        if isinstance(phone, SmsPhone):
            reply = await phone.send(text)
        else:
            if not phone.in_session:
                raise ConversationFailedError("the session has ended; nothing to send to")
            reply = await phone.send(text)
        action = f"send {text}" if kind == "send" else f"sms {text}"
    elif kind == "timeout":
        if not isinstance(phone, IvrPhone):
            raise ConversationFailedError(
                "timeout is an IVR step (USSD gateways just drop the session)"
            )
        if not phone.in_session:
            raise ConversationFailedError("the call has ended; nothing to wait for")
        reply = await phone.wait()
        action = "(no keys: timeout)"
    else:  # hangup
        if isinstance(phone, SmsPhone):
            raise ConversationFailedError("an SMS conversation has nothing to hang up")
        await phone.hang_up()
        reply, action = None, "hang up"
    run.turns.append(_Turn(action, reply))
    if reply is not None:
        run.last = reply


async def _do_step(run: _Run, step: Step) -> None:
    value = step.text(run.conversation.language)
    kind = step.kind
    if kind in {"dial", "send", "sms", "timeout", "hangup"}:
        await _interact(run, step, value)
    elif kind == "do":
        await _do_action(run, value)
    elif kind in {"expect_balance", "expect_balance_change"}:
        await _expect_balance(run, kind, value)
    elif kind == "expect_notification":
        await _expect_notification(run, str(value))
    elif kind == "expect_operator":
        await _expect_operator(run)
    else:
        _expect_screen(run, kind, value)


def _expect_screen(run: _Run, kind: str, value: Any) -> None:
    screen = _screen(run)
    text = screen.text
    if kind == "expect":
        if str(value) not in text:
            raise ConversationFailedError(f"the screen does not contain {str(value)!r}")
    elif kind == "expect_not":
        if str(value) in text:
            raise ConversationFailedError(f"the screen contains {str(value)!r}, which it must not")
    elif kind == "expect_exact":
        if text != str(value):
            raise ConversationFailedError(f"the screen is not exactly {str(value)!r}")
    elif kind == "expect_regex":
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise ConversationFailedError(f"bad regular expression {value!r}: {exc}") from None
        if not pattern.search(text):
            raise ConversationFailedError(f"no match for the regular expression {str(value)!r}")
    elif kind == "expect_end":
        if not screen.final:
            raise ConversationFailedError("the session goes on; expected it to end here")
    elif kind == "expect_continue" and screen.final:
        raise ConversationFailedError("the session ended; expected it to go on")


async def _expect_operator(run: _Run) -> None:
    conv = run.conversation
    screen = _screen(run)
    if not screen.final:
        raise ConversationFailedError("the session goes on; expected a handoff to an operator")
    if conv.channel == "ivr" and screen.operator is None:
        raise ConversationFailedError("the call ends without a transfer (<Dial>) to an operator")
    waiting = await run.gw.waiting_handoffs(conv.msisdn)
    if not waiting:
        raise ConversationFailedError("no handoff is waiting for an operator (GET /v1/handoffs)")
    run.turns.append(_Turn("(check handoffs)", note=f"waiting: reason {waiting[-1].get('reason')}"))


async def _expect_balance(run: _Run, kind: str, value: Any) -> None:
    available = await _available(run.env.pool, run.conversation.msisdn)
    if kind == "expect_balance":
        if available != int(value):
            raise ConversationFailedError(f"the balance is {available}, expected {int(value)}")
    else:
        change = available - run.baseline
        if change != int(value):
            raise ConversationFailedError(
                f"the balance changed by {change:+d} (from {run.baseline} to {available}), "
                f"expected {int(value):+d}"
            )


async def _expect_notification(run: _Run, text: str) -> None:
    phone = _phone(run)
    sms = phone if isinstance(phone, SmsPhone) else SmsPhone(run.gw, run.conversation.msisdn)
    deadline = time.monotonic() + NOTIFICATION_WAIT_S
    seen: list[str] = []
    while True:
        seen += await sms.notifications(only_new=False)
        if any(text in message for message in seen):
            run.turns.append(_Turn("(check notifications)", note=f"found {text!r}"))
            return
        if time.monotonic() > deadline:
            shown = "; ".join(repr(m) for m in dict.fromkeys(seen)) or "none"
            raise ConversationFailedError(f"no notification contains {text!r} (outbox: {shown})")
        await asyncio.sleep(NOTIFICATION_POLL_S)


async def _do_action(run: _Run, value: Any) -> None:
    pool, msisdn = run.env.pool, run.conversation.msisdn
    action, arg = next(iter(value.items())) if isinstance(value, Mapping) else (value, None)
    if action == "block":
        await ledger.block(pool, msisdn, key=_key("block"))
    elif action == "enroll":
        await ledger.enroll(pool, msisdn, key=_key("enroll"))
    elif action == "accrue":
        await ledger.accrue(pool, msisdn, int(str(arg)), key=_key("accrue"), reason="conversation")
    elif action == "decline_pending_gifts":
        outcome = await ledger.pending_gifts(pool, msisdn)
        items = outcome.value.items if outcome.value is not None else []
        for item in items:
            await ledger.decline_gift(pool, msisdn, item.gift_id, key=_key("decline"))
    elif action == "withdraw_rewards":
        async with pool.acquire() as conn:
            await conn.execute("UPDATE rewards SET active = false")
    run.turns.append(_Turn(f"(behind the scenes: {action}{'' if arg is None else f' {arg}'})"))


# --------------------------------------------------------------------------- standalone


def discover(paths: Sequence[Path]) -> list[Path]:
    """YAML files named, or found in named directories."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob(CONVERSATION_GLOB))
        else:
            files.append(path)
    return files


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextlib.contextmanager
def _embedded(data_dir: Path | None) -> Iterator[tuple[str, str]]:
    own = data_dir is None
    directory = data_dir or Path(tempfile.mkdtemp(prefix="ussd-conv-"))
    servers = EmbeddedServers(directory, durable=False)
    try:
        urls = servers.start()
        yield urls.redis_url, urls.database_url
    finally:
        servers.stop()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class Outcome:
    """One conversation's result."""

    conversation: Conversation
    error: str | None
    seconds: float


async def run_standalone(
    conversations: Sequence[Conversation],
    *,
    redis_url: str,
    database_url: str,
    menus: MenuRegistry,
) -> AsyncIterator[Outcome]:
    """Run each conversation on a fresh database cloned from a migrated template."""
    admin = await asyncpg.connect(_with_database(database_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        conn = await asyncpg.connect(_with_database(database_url, TEMPLATE_DB))
        try:
            await migrate(conn, SCHEMA_PACKAGES)
        finally:
            await conn.close()
        redis = aioredis.Redis.from_url(redis_url)
        try:
            for index, conversation in enumerate(conversations):
                name = f"ussd_conv_{os.getpid()}_{index}"
                await admin.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}" STRATEGY FILE_COPY'
                )
                await redis.flushdb()
                url = _with_database(database_url, name)
                started = time.monotonic()
                error = None
                pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
                try:
                    settings = Settings(redis_url=redis_url, database_url=url)
                    env = ConversationEnv(settings=settings, pool=pool, menus=menus)
                    await run_conversation(conversation, env)
                except ConversationFailedError as exc:
                    error = str(exc)
                finally:
                    await pool.close()
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                yield Outcome(conversation, error, time.monotonic() - started)
        finally:
            await redis.aclose()
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    finally:
        await admin.close()


def select(conversations: Sequence[Conversation], pattern: str | None) -> list[Conversation]:
    """Conversations whose test id matches the glob ``pattern`` (all when None)."""
    if not pattern:
        return list(conversations)
    wanted = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
    return [c for c in conversations if fnmatch.fnmatchcase(c.test_id, wanted)]


def _run_all(
    conversations: list[Conversation], menus: MenuRegistry, data_dir: Path | None
) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def main(redis_url: str, database_url: str) -> None:
        async for outcome in run_standalone(
            conversations, redis_url=redis_url, database_url=database_url, menus=menus
        ):
            status = "ok  " if outcome.error is None else "FAIL"
            click.echo(f"{status} {outcome.conversation.file.name}::{outcome.conversation.test_id}")
            outcomes.append(outcome)

    with _embedded(data_dir) as (redis_url, database_url):
        asyncio.run(main(redis_url, database_url))
    return outcomes


@click.command("test-conversations")
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path("menu_definitions.yaml"),
    show_default=True,
    help="The menu file to test.",
)
@click.option("-k", "pattern", help="Only conversations whose id matches (glob or substring).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded servers run (default: a temporary directory).",
)
def test_conversations(
    files: tuple[Path, ...], menu_file: Path, pattern: str | None, data_dir: Path | None
) -> None:
    """Run conversation tests (default: tests/conversations/*.yaml) on embedded servers."""
    paths = discover(list(files) or [Path("tests/conversations")])
    if not paths:
        raise click.UsageError("no conversation files found")
    try:
        conversations = select([c for p in paths for c in load_file(p)], pattern)
    except ConversationFileError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        menus = MenuRegistry.from_file(menu_file, DIALOGUE_TEXTS)
    except MenuError as exc:
        raise click.ClickException(f"{menu_file}: the menu does not load: {exc}") from None
    outcomes = _run_all(conversations, menus, data_dir)
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        click.echo("\n" + "=" * 72 + "\n" + (outcome.error or ""))
    seconds = sum(o.seconds for o in outcomes)
    click.echo(f"\n{len(outcomes) - len(failed)} passed, {len(failed)} failed in {seconds:.1f} s")
    if failed:
        sys.exit(1)


__all__ = [
    "Conversation",
    "ConversationEnv",
    "ConversationFailedError",
    "ConversationFileError",
    "Step",
    "failure_report",
    "load_file",
    "run_conversation",
    "test_conversations",
]
