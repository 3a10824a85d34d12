"""How the simulator shows a reply: a handset's USSD page, an IVR turn, an SMS bubble."""

from __future__ import annotations

import textwrap

from designer.simulator.phone import Reply
from menus.gsm import measure

SCREEN_WIDTH = 30
USSD_GSM7_LIMIT = 182
USSD_UCS2_LIMIT = 80


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
