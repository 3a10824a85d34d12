"""Templates: CLDR plurals, locale formats, masking, selects and template errors."""

from __future__ import annotations

import datetime as dt

import pytest

from menus.gsm import fits, is_gsm7, measure
from menus.nodes.input import IntegerValidator
from menus.text import TemplateError, parse_template, render

RU_POINTS = "{n, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}"
EN_POINTS = "{n, plural, one {# point} other {# points}}"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 балл"),
        (2, "2 балла"),
        (3, "3 балла"),
        (5, "5 баллов"),
        (11, "11 баллов"),
        (21, "21 балл"),
        (22, "22 балла"),
        (0, "0 баллов"),
        (1234, "1 234 балла"),
        (1.5, "1,5 балла"),
    ],
)
def test_russian_plurals(n: float, expected: str) -> None:
    assert render(parse_template(RU_POINTS), {"n": n}, "ru") == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(1, "1 point"), (5, "5 points"), (0, "0 points"), (1234, "1,234 points")]
)
def test_english_plurals(n: int, expected: str) -> None:
    assert render(parse_template(EN_POINTS), {"n": n}, "en") == expected


def test_numbers_dates_and_phones_per_locale() -> None:
    template = parse_template("{n, number} | {d, date} | {p, phone}")
    scope = {"n": 1234567, "d": dt.date(2026, 5, 9), "p": "+79161234567"}
    expected_ru = "1 234 567 | 9 мая 2026 г. | +7 916 123-45-67"  # noqa: RUF001
    assert render(template, scope, "ru") == expected_ru
    assert render(template, scope, "en") == "1,234,567 | May 9, 2026 | +7 916 123-45-67"
    # ISO strings and datetimes are dates too; missing values render empty.
    assert render(parse_template("{d, date}"), {"d": "2026-05-09T10:00:00+00:00"}, "en") == (
        "May 9, 2026"
    )
    assert render(parse_template("[{x}] [{x, date}]"), {}, "en") == "[] []"


def test_select_and_nested_placeholders() -> None:
    template = parse_template("{k, select, accrual {+{n}} other {-{n}}}")
    assert render(template, {"k": "accrual", "n": 5}, "en") == "+5"
    assert render(template, {"k": "redemption", "n": 5}, "en") == "-5"


def test_hash_outside_plural_and_in_values_is_literal() -> None:
    assert render(parse_template("#{v}"), {"v": "#1"}, "en") == "##1"
    template = parse_template("{n, plural, one {# x {v}} other {# y {v}}}")
    assert render(template, {"n": 2, "v": "#"}, "en") == "2 y #"


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("a {b", "unclosed '{'", 2),
        ("a } b", "'}' without '{'", 2),
        ("{}", "bad placeholder name ''", 1),
        ("{a.__class__}", "bad placeholder name 'a.__class__'", 1),
        (
            "{a, upper}",
            "unknown format 'upper' (use date, day, number, phone, plural, select, signed)",
            1,
        ),
        ("{a, plural}", "a plural needs branches: ... other {...}", 1),
        ("{a, plural, one {x}}", "a plural needs an 'other' branch", 11),
        ("{a, plural, lots {x} other {y}}", "unknown plural category 'lots'", 12),
        ("{a, number, x}", "only plural and select placeholders take branches", 1),
    ],
)
def test_template_errors(source: str, message: str, position: int) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    assert str(caught.value) == message
    assert caught.value.position == position


def test_gsm7_measure() -> None:
    assert is_gsm7("Hello @£$ {}[]~")
    assert measure("abc").units == 3
    assert measure("a{}").units == 5  # extension characters count two septets
    assert measure("€").units == 2
    cyrillic = measure("Баланс")
    assert (cyrillic.units, cyrillic.gsm7) == (6, False)
    assert fits("ж" * 80, 182, 80)
    assert not fits("ж" * 81, 182, 80)
    assert fits("[" * 91, 182, 80)
    assert not fits("[" * 92, 182, 80)
    assert measure("😀").units == 2  # UTF-16 surrogate pair


def test_exact_plural_branch_wins_over_the_category() -> None:
    template = parse_template("{n, plural, =0 {none left} one {# left} other {# left}}")
    assert [render(template, {"n": n}, "en") for n in (0, 1, 21)] == [
        "none left",
        "1 left",
        "21 left",
    ]
    with pytest.raises(TemplateError):
        parse_template("{n, select, =0 {x} other {y}}")


def test_integer_bounds_from_variables() -> None:
    rule = IntegerValidator(type="integer", min="$chk.minimum", max="$chk.maximum")
    scope = {"chk": {"minimum": 10, "maximum": 10_000}}
    assert rule.accept("10", None, scope) == 10
    assert rule.accept("9", None, scope) is None
    assert rule.accept("10001", None, scope) is None
    # No such variable: the default range applies.
    assert rule.accept("5", None, {}) == 5
    with pytest.raises(ValueError, match="pattern"):
        IntegerValidator(type="integer", max="chk.maximum")


def test_an_empty_exact_branch_is_taken() -> None:
    template = parse_template("Balance.{n, plural, =0 {} other { Pending: #.}}")
    assert render(template, {"n": 0}, "en") == "Balance."
    assert render(template, {"n": 40}, "en") == "Balance. Pending: 40."
