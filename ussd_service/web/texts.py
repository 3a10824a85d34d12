"""The words of the web pages in every language, and locale formatting.

Texts live in ``texts.yaml`` beside this module (``key: {ru: ..., en: ...}``,
``{name}`` placeholders); a page gets a ``Texts`` bound to its language and
calls it: ``t("login.title")``, ``t.points(120)``, ``t.date(day)``,
``t.phone("+79161234567")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from ruamel.yaml import YAML

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
_SPACES = str.maketrans({"\xa0": " ", "\u202f": " "})


@cache
def catalogue() -> dict[str, dict[str, Any]]:
    """Every text by key, then language (loaded once)."""
    source = files("ussd_service.web").joinpath("texts.yaml").read_text("utf-8")
    data = YAML(typ="safe").load(source)
    flat: dict[str, dict[str, Any]] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and set(value) <= {*LANGUAGES} and value:
                flat[name] = dict(value)
            elif isinstance(value, Mapping):
                walk(name + ".", value)
            else:
                raise ValueError(f"texts.yaml: {name} is neither texts by language nor a group")

    walk("", data)
    return flat


def pick_language(accept_language: str) -> str:
    """The first of our languages an ``Accept-Language`` header names, else the default."""
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        wanted.append((-quality, index, tag.strip().lower()[:2]))
    for _, _, tag in sorted(wanted):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


class Texts:
    """The texts and formats of one language."""

    def __init__(self, language: str, timezone: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.zone = ZoneInfo(timezone)
        self._locale = Locale.parse(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        text = catalogue()[key][self.language]
        if not isinstance(text, str):
            raise TypeError(f"text {key} has plural forms: use t.plural")
        return text.format_map(values) if values else text

    def has(self, key: str) -> bool:
        """True when ``key`` is a text (for codes that may have no text of their own)."""
        return key in catalogue()

    def plural(self, key: str, count: int, **values: Any) -> str:
        """A text with CLDR plural forms (``one``, ``few``, ``many``, ``other``)."""
        forms = catalogue()[key][self.language]
        form = forms.get(self._locale.plural_form(abs(count))) or forms["other"]
        return str(form).format_map({"n": self.number(count), **values})

    def points(self, count: int) -> str:
        """``1 234 points`` in the page's language."""
        return self.plural("units.points", count)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self._locale).translate(_SPACES)

    def date(self, value: date | datetime | None) -> str:
        """A calendar day (a moment is shown on its day in the programme's time zone)."""
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.astimezone(self.zone).date()
        return format_date(value, "long", locale=self._locale).translate(_SPACES)

    def moment(self, value: datetime | None) -> str:
        """A date and time in the programme's time zone."""
        if value is None:
            return ""
        local = value.astimezone(self.zone)
        return format_datetime(local, "d MMM HH:mm", locale=self._locale).translate(_SPACES)

    def duration(self, value: timedelta) -> str:
        """A wait, rounded down to minutes: ``45 s``, ``3 min``, ``1 h 05 min``."""
        seconds = max(0, int(value.total_seconds()))
        if seconds < 60:
            return self("units.seconds", n=seconds)
        minutes = seconds // 60
        if minutes < 60:
            return self("units.minutes", n=minutes)
        return self("units.hours", h=minutes // 60, m=f"{minutes % 60:02d}")

    @staticmethod
    def phone(msisdn: str) -> str:
        """A number in full, grouped as people read it: ``+7 916 123-45-67``."""
        try:
            parsed = phonenumbers.parse(msisdn, None)
        except phonenumbers.NumberParseException:
            return msisdn
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
