"""The simulator's terminal: lines in, screens out, one loop per channel.

Input is read line by line, so a script can drive a phone through stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TextIO

from designer.simulator.phone import Phone, PhoneError
from designer.simulator.screens import render

# Commands the hand-driven phone understands (anything else is input).
QUIT_WORDS = frozenset({"q", "quit", "exit"})
HANGUP_WORDS = frozenset({"/hangup", "/abort"})
DTMF_KEYS = frozenset("0123456789*#")


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


def usage(phone: Phone) -> str:
    """The first line the simulator prints: what this phone is and how to drive it."""
    gateway = phone.dialect.name
    if phone.channel == "ussd":
        return (
            f"USSD phone ({gateway}). Enter: dial {phone.number} (or type a code like "
            "*111*455*3#). In a session type your reply; /hangup ends it; q quits."
        )
    if phone.channel == "ivr":
        return (
            f"Voice line {phone.number} ({gateway}). Enter: call. Then type keys "
            "(e.g. 1, or 89161234567#); an empty line waits out the timeout; "
            "/hangup hangs up; q quits."
        )
    return (
        f"SMS to {phone.number} ({gateway}). Type a message "
        "(e.g. BALANCE, GIFT 89161234567 100); q quits."
    )


async def run_ussd(term: Terminal, phone: Phone) -> None:
    """The USSD loop: dial, show pages, read replies, until EOF or q."""
    code = phone.number
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


async def run_ivr(term: Terminal, phone: Phone) -> None:
    """The IVR loop: call, hear prompts, press keys, until EOF or q."""
    number = phone.number
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
        if keys and not set(keys) <= DTMF_KEYS:
            term.say("  (only the keys 0-9, * and # exist on a phone)")
            continue
        reply = await phone.send(keys) if keys else await phone.wait()
        if not keys:
            term.say("  (no keys: timeout)")
        term.say(render(reply))


async def run_sms(term: Terminal, phone: Phone) -> None:
    """The SMS loop: each line is one message to the short number."""
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


async def _show_notifications(term: Terminal, phone: Phone) -> None:
    try:
        texts = await phone.notifications()
    except PhoneError as exc:
        term.say(f"  (notifications unavailable: {exc})")
        return
    for text in texts:
        term.say(f"  [notification] {text}")


async def run_phone(term: Terminal, phone: Phone) -> None:
    """The loop of the phone's channel, after a line saying how to use it."""
    term.say(usage(phone))
    if phone.channel == "ivr":
        await run_ivr(term, phone)
    elif phone.channel == "sms":
        await run_sms(term, phone)
    else:
        await run_ussd(term, phone)
