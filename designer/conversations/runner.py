"""Running one conversation: a phone of its gateway against a real app over HTTP.

Each step drives the phone (``dial``, ``send``, ``timeout``, ``hangup``,
``sms``), checks the screen or the ledger (``expect*``), or changes the ledger
behind the session's back (``do``). A step that does not go as written ends
the run with a report: where, what was expected, the conversation so far and
the screen that did not match.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from designer.conversations.fixtures import apply_given, available, do_action, ledger_down
from designer.conversations.spec import Conversation, ConversationFailedError, Step, shown_path
from designer.simulator.phone import DEFAULT_NUMBERS, Phone, PhoneError, Reply, ServiceClient
from designer.simulator.screens import render
from designer.simulator.serving import http_session, serve_app
from menus import MenuRegistry
from ussd_service.channels import dialect
from ussd_service.config import Settings

# How long expect_notification waits for the outbox to show a message.
NOTIFICATION_WAIT_S = 3.0
NOTIFICATION_POLL_S = 0.1
PHONE_STEPS = frozenset({"dial", "send", "sms", "timeout", "hangup"})


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
    phone: Phone
    turns: list[_Turn] = field(default_factory=list)
    baseline: int = 0
    last: Reply | None = None


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


async def run_conversation(conv: Conversation, env: ConversationEnv) -> None:
    """Run one conversation; raises ConversationFailedError with a readable report."""
    await apply_given(conv, env.pool)
    settings = env.settings
    if conv.given.get("ledger") == "down":
        settings = ledger_down(settings)
    async with serve_app(settings, menus=env.menus) as base_url, http_session() as http:
        phone = Phone(ServiceClient(http, base_url), dialect(conv.gateway), conv.msisdn)
        run = _Run(conv, env, phone, baseline=await available(env.pool, conv.msisdn))
        for step in conv.steps:
            try:
                await _do_step(run, step)
            except ConversationFailedError as exc:
                raise ConversationFailedError(failure_report(run, step, str(exc))) from None
            except (PhoneError, OSError) as exc:
                raise ConversationFailedError(
                    failure_report(run, step, f"the service failed: {exc}")
                ) from None


async def _do_step(run: _Run, step: Step) -> None:
    value = step.text(run.conversation.language)
    kind = step.kind
    if kind in PHONE_STEPS:
        await _interact(run, kind, value)
    elif kind == "do":
        done = await do_action(run.env.pool, run.conversation.msisdn, value)
        run.turns.append(_Turn(f"(behind the scenes: {done})"))
    elif kind in {"expect_balance", "expect_balance_change"}:
        await _expect_balance(run, kind, value)
    elif kind == "expect_notification":
        await _expect_notification(run, str(value))
    elif kind == "expect_operator":
        await _expect_operator(run)
    else:
        _expect_screen(run, kind, value)


async def _interact(run: _Run, kind: str, value: Any) -> None:
    phone = run.phone
    sms = phone.channel == "sms"
    reply: Reply | None
    if kind == "dial":
        if sms:
            raise ConversationFailedError("SMS conversations send texts (sms), they do not dial")
        code = str(value) if value not in (None, True) else DEFAULT_NUMBERS[phone.channel]
        reply = await phone.dial(code)
        action = f"dial {code}"
    elif kind in {"send", "sms"}:
        text = str(value)
        if not sms and not phone.in_session:
            raise ConversationFailedError("the session has ended; nothing to send to")
        reply = await phone.send(text)
        action = f"{kind} {text}"
    elif kind == "timeout":
        if phone.channel != "ivr":
            raise ConversationFailedError(
                "timeout is an IVR step (USSD gateways just drop the session)"
            )
        if not phone.in_session:
            raise ConversationFailedError("the call has ended; nothing to wait for")
        reply = await phone.wait()
        action = "(no keys: timeout)"
    else:  # hangup
        if sms:
            raise ConversationFailedError("an SMS conversation has nothing to hang up")
        await phone.hang_up()
        reply, action = None, "hang up"
    run.turns.append(_Turn(action, reply))
    if reply is not None:
        run.last = reply


def _screen(run: _Run) -> Reply:
    if run.last is None:
        raise ConversationFailedError("nothing on the screen yet: dial (or send an SMS) first")
    return run.last


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
        raise ConversationFailedError("the call ends without a transfer to an operator")
    waiting = await run.phone.service.waiting_handoffs(conv.msisdn)
    if not waiting:
        raise ConversationFailedError("no handoff is waiting for an operator (GET /v1/handoffs)")
    run.turns.append(_Turn("(check handoffs)", note=f"waiting: reason {waiting[-1].get('reason')}"))


async def _expect_balance(run: _Run, kind: str, value: Any) -> None:
    balance = await available(run.env.pool, run.conversation.msisdn)
    if kind == "expect_balance":
        if balance != int(value):
            raise ConversationFailedError(f"the balance is {balance}, expected {int(value)}")
    else:
        change = balance - run.baseline
        if change != int(value):
            raise ConversationFailedError(
                f"the balance changed by {change:+d} (from {run.baseline} to {balance}), "
                f"expected {int(value):+d}"
            )


async def _expect_notification(run: _Run, text: str) -> None:
    deadline = time.monotonic() + NOTIFICATION_WAIT_S
    seen: list[str] = []
    while True:
        seen += await run.phone.notifications(only_new=False)
        if any(text in message for message in seen):
            run.turns.append(_Turn("(check notifications)", note=f"found {text!r}"))
            return
        if time.monotonic() > deadline:
            shown = "; ".join(repr(m) for m in dict.fromkeys(seen)) or "none"
            raise ConversationFailedError(f"no notification contains {text!r} (outbox: {shown})")
        await asyncio.sleep(NOTIFICATION_POLL_S)
