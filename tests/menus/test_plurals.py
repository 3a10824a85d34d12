# Russian words are the point of these tests.
# ruff: noqa: RUF001, RUF002
"""Every text of the default menu that counts points agrees with its number.

Each text (screens, IVR wording, SMS replies and notifications) is rendered
with every number-like placeholder at 1, 2, 5, 11 and 21, both languages,
written and spoken; wherever a number is followed by the word for points, the
word must be the language's CLDR plural form of that number, and no text
abbreviates it (``б.``, ``pts``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from menus import Menu
from menus.model import Text

NUMBERS = (1, 2, 5, 11, 21)
# Placeholders that hold a phone number, a date or a title, not a count.
PHONES = {"recipient", "sender", "gift_sender", "item.sender", "item.counterparty"}
DATES_SUFFIX = ("_at", "_date")
TITLES = {"reward_title", "item.title", "item.reward"}
RU_FORMS = {1: "балл", 2: "балла", 5: "баллов", 11: "баллов", 21: "балл"}
EN_FORMS = {1: "point", 2: "points", 5: "points", 11: "points", 21: "points"}
RU_WORD = re.compile(r"(\d+) (балл\w*)")
EN_WORD = re.compile(r"(\d+) (points?)\b")


def _scope(menu: Menu, number: int) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    for name in menu.model.variables:
        value: Any = number
        if name in PHONES:
            value = "+79162000002"
        elif name.endswith(DATES_SUFFIX):
            value = "2027-11-30"
        elif name in TITLES:
            value = "50 SMS"
        target = scope
        *parents, leaf = name.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return scope


def _texts(menu: Menu) -> Iterator[tuple[str, Text]]:
    for name in menu.model.texts:
        yield f"texts.{name}", name
    for node_id, node in menu.nodes.items():
        for path, text in node.texts():
            yield f"nodes.{node_id}.{'.'.join(map(str, path))}", text
    for group in ("replies", "notifications"):
        for name, text in getattr(menu.model.sms, group).items():
            yield f"sms.{group}.{name}", text


def _renderings(menu: Menu, language: str, number: int) -> Iterator[tuple[str, str]]:
    scope = _scope(menu, number)
    for where, text in _texts(menu):
        compiled = menu.text(text)
        yield where, compiled.render(language, scope)
        yield f"{where} (spoken)", compiled.render_voice(language, scope)


@pytest.mark.parametrize("number", NUMBERS)
def test_russian_counts_agree(default_menu: Menu, number: int) -> None:
    for where, text in _renderings(default_menu, "ru", number):
        assert " б." not in text, (where, text)
        for digits, word in RU_WORD.findall(text):
            if int(digits) == number:
                assert word == RU_FORMS[number], (where, text)


@pytest.mark.parametrize("number", NUMBERS)
def test_english_counts_agree(default_menu: Menu, number: int) -> None:
    for where, text in _renderings(default_menu, "en", number):
        assert " pts" not in text, (where, text)
        for digits, word in EN_WORD.findall(text):
            if int(digits) == number:
                assert word == EN_FORMS[number], (where, text)


ABBREVIATED = re.compile(
    r"(?<![\w.])(б|г|мин|руб|янв|февр|мар|апр|июн|июл|авг|сент|окт|нояб|дек"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|pts)\.|\.\.\."
)


@pytest.mark.parametrize("language", ["ru", "en"])
def test_nothing_abbreviated_is_spoken(default_menu: Menu, language: str) -> None:
    """The voice line says words: dates in full, no "б.", no "(8916...)"."""
    for number in NUMBERS:
        for where, text in _renderings(default_menu, language, number):
            if where.endswith("(spoken)") and not where.startswith("sms."):
                assert not ABBREVIATED.search(text), (where, text)
