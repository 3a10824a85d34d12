"""Text templates: placeholders, CLDR plurals and locale formatting, without code execution.

A template is plain text with ICU-style placeholders::

    {name}                       the value as text
    {points, number}             a number in the locale's format (1 234 / 1,234)
    {expires, date}              a date in the locale's medium format
    {created, day}               day and month only (9 мая, May 9)
    {points, signed}             a number with its sign (+120, -15)
    {recipient, phone}           a phone number in full, grouped (+7 916 123-45-67)
    {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}
    {left, plural, =0 {Лимит исчерпан.} one {Ещё # балл.} other {Ещё # балла.}}
    {kind, select, accrual {Начисление} redemption {Обмен} other {Операция}}

``#`` inside a plural branch is the number, formatted; an exact branch
(``=0``) wins over the number's category. Names are dotted paths
into the session variables and operation results; nothing else is evaluated.

Rendered for voice (``voice=True``), values are said rather than written:
dates in words with no abbreviation (``9 декабря 2026 года``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers
from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal

from menus.expr import lookup

FORMATS = frozenset({"number", "signed", "date", "day", "phone", "plural", "select"})
BRANCHED = frozenset({"plural", "select"})
PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
# An exact-value plural branch: "=0", "=1".
_EXACT = re.compile(r"=[0-9]{1,9}")
# Babel uses no-break spaces as group separators; gateways and GSM-7 do not have them.
_SPACES = str.maketrans({"\xa0": " ", "\u202f": " "})


class TemplateError(ValueError):
    """A template that does not parse; ``position`` is the 0-based offset in the source."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Placeholder:
    """One ``{...}`` in a template."""

    path: str
    format: str | None = None
    branches: Mapping[str, tuple[Segment, ...]] = field(default_factory=dict)


Segment = str | Placeholder


@lru_cache(maxsize=32)
def locale(language: str) -> Locale:
    """The Babel locale of a language code (cached)."""
    return Locale.parse(language)


def _matching_brace(source: str, start: int) -> int:
    depth = 0
    for index in range(start, len(source)):
        if source[index] == "{":
            depth += 1
        elif source[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise TemplateError("unclosed '{'", start)


def _parse_branches(source: str, offset: int, fmt: str) -> dict[str, tuple[Segment, ...]]:
    branches: dict[str, tuple[Segment, ...]] = {}
    pos = 0
    while pos < len(source):
        if source[pos].isspace():
            pos += 1
            continue
        brace = source.find("{", pos)
        if brace < 0:
            raise TemplateError("plural category without '{text}'", offset + pos)
        category = source[pos:brace].strip()
        exact = fmt == "plural" and _EXACT.fullmatch(category) is not None
        named = category.isidentifier() and (fmt != "plural" or category in PLURAL_CATEGORIES)
        known = exact or named
        if not known:
            raise TemplateError(f"unknown plural category {category!r}", offset + pos)
        end = _matching_brace(source, brace)
        branches[category] = parse_template(source[brace + 1 : end], offset + brace + 1)
        pos = end + 1
    if "other" not in branches:
        raise TemplateError(f"a {fmt} needs an 'other' branch", offset)
    return branches


def parse_template(source: str, offset: int = 0) -> tuple[Segment, ...]:
    """Split ``source`` into literal strings and placeholders; raises TemplateError."""
    segments: list[Segment] = []
    pos = 0
    while pos < len(source):
        brace = source.find("{", pos)
        stray = source.find("}", pos)
        if stray >= 0 and (brace < 0 or stray < brace):
            raise TemplateError("'}' without '{'", offset + stray)
        if brace < 0:
            segments.append(source[pos:])
            break
        if brace > pos:
            segments.append(source[pos:brace])
        end = _matching_brace(source, brace)
        segments.append(_parse_placeholder(source[brace + 1 : end], offset + brace + 1))
        pos = end + 1
    return tuple(segments)


def _parse_placeholder(body: str, offset: int) -> Placeholder:
    parts = body.split(",", 2)
    path = parts[0].strip()
    if not path or not all(p.isidentifier() and "__" not in p for p in path.split(".")):
        raise TemplateError(f"bad placeholder name {path!r}", offset)
    fmt = parts[1].strip() if len(parts) > 1 else None
    if fmt is not None and fmt not in FORMATS:
        raise TemplateError(f"unknown format {fmt!r} (use {', '.join(sorted(FORMATS))})", offset)
    if fmt in BRANCHED:
        if len(parts) < 3:
            raise TemplateError(f"a {fmt} needs branches: ... other {{...}}", offset)
        rest = parts[2]
        return Placeholder(path, fmt, _parse_branches(rest, offset + len(body) - len(rest), fmt))
    if len(parts) > 2:
        raise TemplateError("only plural and select placeholders take branches", offset)
    return Placeholder(path, fmt)


def placeholders(segments: tuple[Segment, ...]) -> list[Placeholder]:
    """Every placeholder in ``segments``, plural branches included."""
    found: list[Placeholder] = []
    for seg in segments:
        if isinstance(seg, Placeholder):
            found.append(seg)
            for branch in seg.branches.values():
                found.extend(placeholders(branch))
    return found


def format_number(value: Any, language: str, voice: bool = False) -> str:
    """``value`` as a number in the language's format, with plain spaces."""
    try:
        return str(format_decimal(value, locale=locale(language))).translate(_SPACES)
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


def format_signed(value: Any, language: str, voice: bool = False) -> str:
    """``+120`` / ``-15``: the number with its sign (ASCII, so GSM-7 pages stay GSM-7)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = int(str(value))
        except ValueError:
            return _plain(value)
    if value == 0:
        return format_number(0, language, voice)
    return ("+" if value > 0 else "-") + format_number(abs(value), language, voice)


def _as_day(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


# Spoken dates: the month in words and no abbreviated "year" (TTS would spell it).
_SPOKEN_DATE = {"ru": "d MMMM y 'года'"}


def format_day(value: Any, language: str, voice: bool = False) -> str:
    """A date (``date``, ``datetime`` or ISO string) in the language's medium format.

    For voice, the long format with the month in words (``9 декабря 2026 года``).
    """
    day = _as_day(value)
    if day is None:
        return "" if value is None else str(value)
    lang = locale(language)
    if voice:
        pattern = _SPOKEN_DATE.get(lang.language, "long")
        return str(format_date(day, format=pattern, locale=lang)).translate(_SPACES)
    return str(format_date(day, format="medium", locale=lang)).translate(_SPACES)


def format_day_month(value: Any, language: str, voice: bool = False) -> str:
    """Day and month only (``9 мая``, ``May 9``); for voice the month in full."""
    day = _as_day(value)
    if day is None:
        return "" if value is None else str(value)
    skeleton = "MMMMd" if voice else "MMMd"
    return str(format_skeleton(skeleton, day, locale=locale(language))).translate(_SPACES)


def format_phone(value: Any, voice: bool = False) -> str:
    """A phone number in full, grouped as people read it (``+7 916 123-45-67``).

    Subscribers see their own and their friends' numbers whole; masking is
    for logs only. A value that is not a valid number is shown as it is. For
    voice, the groups are said apart (``+7 916 123 45 67``).
    """
    text = "" if value is None else str(value)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_valid_number(number):
        return text
    grouped = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return grouped.replace("-", " ") if voice else grouped


def plural_category(value: Any, language: str) -> str:
    """The CLDR plural category of ``value`` in ``language`` (``other`` for non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = int(str(value))
        except ValueError:
            return "other"
    return str(locale(language).plural_form(abs(value)))


def _plain(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


_FORMATTERS: Mapping[str | None, Callable[[Any, str, bool], str]] = {
    None: lambda value, _language, _voice: _plain(value),
    "number": format_number,
    "signed": format_signed,
    "date": format_day,
    "day": format_day_month,
    "phone": lambda value, _language, voice: format_phone(value, voice),
}


def render(
    segments: tuple[Segment, ...],
    scope: Mapping[str, Any],
    language: str,
    number: str | None = None,
    *,
    voice: bool = False,
) -> str:
    """Fill the placeholders of a parsed template from ``scope``.

    ``number`` replaces ``#`` in literal text (inside a plural branch only);
    ``voice`` renders values to be spoken (see the module's docstring).
    """
    out: list[str] = []
    for seg in segments:
        if isinstance(seg, str):
            out.append(seg if number is None else seg.replace("#", number))
            continue
        value = lookup(scope, seg.path)
        if seg.format == "plural":
            exact = f"={_plain(value)}"
            if exact in seg.branches:  # an empty branch counts too
                branch = seg.branches[exact]
            else:
                category = plural_category(value, language)
                branch = seg.branches.get(category, seg.branches["other"])
            shown = format_number(value, language, voice)
            out.append(render(branch, scope, language, shown, voice=voice))
        elif seg.format == "select":
            branch = seg.branches.get(_plain(value), seg.branches["other"])
            out.append(render(branch, scope, language, voice=voice))
        else:
            out.append(_FORMATTERS[seg.format](value, language, voice))
    return "".join(out)


def render_worst(segments: tuple[Segment, ...], width: Callable[[Placeholder], str]) -> str:
    """The longest text a template can produce, each placeholder replaced by ``width(ph)``.

    For plurals the longest branch is taken, with ``#`` as wide as the number.
    """
    out: list[str] = []
    for seg in segments:
        if isinstance(seg, str):
            out.append(seg)
        elif seg.format in BRANCHED:
            filler = width(seg) if seg.format == "plural" else ""
            options = [render_worst(b, width).replace("#", filler) for b in seg.branches.values()]
            out.append(max(options, key=len))
        else:
            out.append(width(seg))
    return "".join(out)
