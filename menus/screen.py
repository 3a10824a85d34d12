"""What the subscriber sees: the Screen, USSD pagination and IVR hints."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from menus.gsm import fits


@dataclass(frozen=True)
class Prompt:
    """One piece of an IVR prompt: text for text-to-speech, or an audio file to play.

    ``voice`` and ``language_code`` are set when this piece is in another
    language than the screen's (``IvrHints``): "For English, press 2" in a
    Russian menu is said by the English voice.
    """

    text: str
    audio: str | None = None
    voice: str = ""
    language_code: str = ""


@dataclass(frozen=True)
class IvrHints:
    """How the IVR platform should collect the next keys."""

    num_digits: int | None
    finish_on_key: str
    timeout: int
    voice: str
    language_code: str


@dataclass(frozen=True)
class Handoff:
    """The session goes to a human operator."""

    reason: str
    destination: str = ""


@dataclass(frozen=True)
class Screen:
    """One reply, rendered in the session language.

    ``text`` is the USSD page (or, on IVR, the prompts joined for logs and
    simulators); ``prompts`` and ``ivr`` are set on IVR only. ``final`` ends
    the session; ``handoff`` says it goes to an operator.
    """

    node: str
    text: str
    final: bool
    handoff: Handoff | None = None
    prompts: tuple[Prompt, ...] = ()
    ivr: IvrHints | None = None
    page: int = 0
    pages: int = 1


@dataclass(frozen=True)
class Page:
    """One USSD page: its text, the entries (by index) it shows, and how many of
    its first lines are the screen's title (they may give way to an error)."""

    text: str
    entries: tuple[int, ...] = ()
    header_lines: int = 0


@dataclass(frozen=True)
class PageLimits:
    """The page limits of a channel and the localised navigation lines."""

    max_gsm7: int
    max_ucs2: int
    more_line: str
    back_line: str
    max_entries: int = 9
    sep: str = field(default="\n")
    # The error shown above a page after a wrong key: a page's entries leave
    # room for it (the title and the navigation hints give way to it).
    error_line: str = ""

    def fits(self, text: str) -> bool:
        """True when ``text`` fits one page."""
        return fits(text, self.max_gsm7, self.max_ucs2)


def _split_words(text: str, room: Callable[[str], bool]) -> list[str]:
    """Cut ``text`` into chunks that satisfy ``room``, only between words."""
    chunks: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and not room(candidate):
            chunks.append(current)
            current = word
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks


def paginate(
    header: str,
    entries: Sequence[str],
    limits: PageLimits,
    *,
    back: bool,
    key: Callable[[int, int], str],
) -> list[Page]:
    """Lay out ``header`` and ``entries`` on as few pages as fit the limits.

    ``key(position_on_page, entry_index)`` gives an entry's key ("" for none). The back line
    appears when ``back`` is true and on every page after the first (there it
    returns to the previous page); the more line on every page but the last.
    A header too long for one page is split between words; an entry is never
    split across pages (one that cannot fit alone is shortened by whole words).
    Entries fill each page up to the limit, leaving room for ``limits.error_line``
    in place of the title and the navigation hints (``with_error``).
    """
    sep = limits.sep

    def room(entry_lines: list[str]) -> bool:
        error = limits.error_line
        return not error or limits.fits(sep.join([error, *entry_lines]))

    def compose(lines: list[str], page_index: int, more: bool) -> str:
        tail = [limits.more_line] if more else []
        if back or page_index > 0:
            tail.append(limits.back_line)
        return sep.join([line for line in lines if line] + tail)

    def line_of(key_text: str, entry: str) -> str:
        line = f"{key_text}. {entry}" if key_text else entry
        # An entry longer than a page (a value over its declared length) loses
        # whole words at its end, so the page keeps its navigation lines.
        while " " in line and not limits.fits(compose([line], 1, more=True)):
            line = line.rsplit(" ", 1)[0]
        return line

    def lines_in(text: str) -> int:
        return text.count(sep) + 1 if text else 0

    labelled = [line_of(key(i, i), e) for i, e in enumerate(entries)]
    if len(entries) <= limits.max_entries:
        single = compose([header, *labelled], 0, more=False)
        if limits.fits(single) and room(labelled):
            return [Page(single, tuple(range(len(entries))), lines_in(header))]

    pages: list[Page] = []
    lines: list[str] = []
    shown: list[int] = []
    head = 0  # lines of the header at the start of ``lines``
    # The header, in as many chunks as it needs.
    if header:
        chunks = _split_words(header, lambda c: limits.fits(compose([c], len(pages), more=True)))
        for chunk in chunks[:-1]:
            pages.append(Page(compose([chunk], len(pages), more=True), (), lines_in(chunk)))
        lines = [chunks[-1]]
        head = lines_in(chunks[-1])
    for index, entry in enumerate(entries):
        line = line_of(key(len(shown), index), entry)
        last = index == len(entries) - 1
        candidate = compose([*lines, line], len(pages), more=not last)
        fits = limits.fits(candidate) and room([*lines[head:], line])
        if shown or (lines and not fits):
            full = len(shown) >= limits.max_entries or not fits
            if full:
                pages.append(Page(compose(lines, len(pages), more=True), tuple(shown), head))
                lines, shown, head = [], [], 0
                line = line_of(key(0, index), entry)
        lines.append(line)
        shown.append(index)
    pages.append(Page(compose(lines, len(pages), more=False), tuple(shown), head))
    return pages


#: Distinct layouts kept: every static screen of a few menu versions in both
#: languages, and the lists most shown; a hop laying out a kept one costs a lookup.
LAYOUT_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=LAYOUT_CACHE_SIZE)
def _laid_out(
    header: str,
    entries: tuple[str, ...],
    limits: PageLimits,
    back: bool,
    keys: tuple[str, ...] | None,
) -> tuple[Page, ...]:
    if keys is None:
        pages = paginate(header, entries, limits, back=back, key=lambda pos, _i: str(pos + 1))
    else:
        pages = paginate(header, entries, limits, back=back, key=lambda _pos, i: keys[i])
    return tuple(pages)


def layout(
    header: str,
    entries: Sequence[str],
    limits: PageLimits,
    *,
    back: bool,
    keys: Sequence[str] | None,
) -> list[Page]:
    """``paginate`` with fixed keys (``keys[i]`` for entry i; None: numbered
    1.. on every page), remembered: the same screen is laid out once.

    A page is a pure function of these arguments, so a kept layout is the
    layout; the static screens of a menu version are laid out once per process.
    """
    frozen_keys = None if keys is None else tuple(keys)
    return list(_laid_out(header, tuple(entries), limits, back, frozen_keys))


def with_error(error: str, page: Page, limits: PageLimits) -> str:
    """The page with the error on top; what gives way when it is full.

    The title gives way first, then the navigation hints (their keys still
    work); the options never do: a wrong key must not hide the right one.
    """
    sep = limits.sep
    lines = page.text.split(sep)
    head, body = lines[: page.header_lines], lines[page.header_lines :]
    hints: list[str] = []
    while body and body[-1] in (limits.more_line, limits.back_line):
        hints.insert(0, body.pop())
    candidates = [
        [*head, *body, *hints],
        [*body, *hints],
        [*body, *(hint for hint in hints if hint != limits.back_line)],
        body,
    ]
    for candidate in candidates:
        text = sep.join([error, *candidate])
        if limits.fits(text):
            return text
    return error if limits.fits(error) else page.text
