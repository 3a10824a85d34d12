"""GSM 03.38 alphabet: which characters a USSD page or SMS can carry in 7 bits."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Basic character set (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + char, so it counts two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION
_EXTENDED = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")


@dataclass(frozen=True)
class Measure:
    """The size of a text on the air: units used, the limit that applies, the encoding."""

    units: int
    gsm7: bool

    def fits(self, gsm7_limit: int, ucs2_limit: int) -> bool:
        """True when the text fits the limit of its encoding."""
        return self.units <= (gsm7_limit if self.gsm7 else ucs2_limit)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet (incl. extension)."""
    # Set operations run in C: loading a large menu measures every page of every node.
    return _GSM7.issuperset(text)


def measure(text: str) -> Measure:
    """Septets when ``text`` is GSM-7 (extension chars count 2), else UTF-16 code units."""
    if is_gsm7(text):
        extension = sum(text.count(ch) for ch in GSM7_EXTENSION) if _EXTENDED.search(text) else 0
        return Measure(len(text) + extension, gsm7=True)
    return Measure(len(text.encode("utf-16-le")) // 2, gsm7=False)


def fits(text: str, gsm7_limit: int, ucs2_limit: int) -> bool:
    """True when ``text`` fits in ``gsm7_limit`` septets, or ``ucs2_limit`` UCS-2 characters."""
    # A character takes at most two units in either encoding: a short text
    # fits without a look at its characters (most of the lines a large menu's
    # check lays out).
    if 2 * len(text) <= min(gsm7_limit, ucs2_limit):
        return True
    return measure(text).fits(gsm7_limit, ucs2_limit)
