"""The condition language: what it evaluates, and that hostile input cannot run code."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from menus.expr import ExpressionError, parse
from menus.limits import MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH

SCOPE = {"sub": {"status": "active", "language": "ru"}, "points": 12, "name": "Ann", "flag": True}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('sub.status == "active"', True),
        ("sub.status == 'blocked'", False),
        ("points > 10 and points <= 12", True),
        ("points < 10 or name == 'Ann'", True),
        ("not flag", False),
        ("not (points >= 100)", True),
        ("missing == null", True),
        ("missing.deeper.still == null", True),
        ("points == '12'", False),  # different kinds are never equal
        ("points != '12'", True),
        ("name > 3", False),  # ordering across kinds is false, not an error
        ("points == 12.0", True),
        ("-1 < points", True),
        ("true", True),
        ("sub", True),
        ("flag and (points > 1 or false)", True),
    ],
)
def test_evaluates(source: str, expected: bool) -> None:
    assert parse(source).evaluate(SCOPE) is expected


def test_names_are_collected() -> None:
    assert parse("a.b == 1 and not c or d < e").names == frozenset({"a.b", "c", "d", "e"})


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("a = 1", "unexpected character '='", 2),
        ("a ==", "unexpected end of expression", 4),
        ("(a", "unexpected end of expression", 2),
        ("a b", "unexpected 'b'", 2),
        ("", "empty expression", 0),
        ("a.__class__", "name 'a.__class__' is not allowed", 0),
        ("__import__('os')", "name '__import__' is not allowed", 0),
        ("a + 1", "unexpected character '+'", 2),
        ("f(x)", "unexpected '('", 1),
        ("a[0]", "unexpected character '['", 1),
        ("lambda: 1", "unexpected character ':'", 6),
    ],
)
def test_rejects(source: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert str(caught.value) == message
    assert caught.value.position == position


def test_limits() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        parse("a" * (MAX_EXPRESSION_LENGTH + 1))
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("(" * (MAX_EXPRESSION_DEPTH + 1) + "a" + ")" * (MAX_EXPRESSION_DEPTH + 1))
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("not " * (MAX_EXPRESSION_DEPTH + 1) + "a")


def test_hostile_sources_never_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attacks = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        f"exec(\"open('{marker}','w')\")",
        "().__class__.__bases__[0].__subclasses__()",
        "{{ config }}",
        "${7*7}",
    ]
    for attack in attacks:
        with pytest.raises(ExpressionError):
            parse(attack)
    assert not marker.exists()


def test_lookup_reads_only_mappings() -> None:
    # Attribute-like paths read dictionary keys only: a string's attributes are invisible.
    assert parse("name.upper == null").evaluate(SCOPE) is True


@given(st.text(max_size=80))
def test_random_text_parses_or_raises_expression_error(source: str) -> None:
    try:
        expression = parse(source)
    except ExpressionError:
        return
    assert isinstance(expression.evaluate(SCOPE), bool)


@given(
    st.recursive(
        st.sampled_from(["a", "b.c", "1", "'x'", "true", "null"]),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["==", "!=", "<", ">=", "and", "or"]), inner).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"
            ),
            inner.map(lambda e: f"not ({e})"),
        ),
        max_leaves=12,
    )
)
def test_generated_expressions_evaluate_to_booleans(source: str) -> None:
    if len(source) > MAX_EXPRESSION_LENGTH or source.count("(") > MAX_EXPRESSION_DEPTH:
        return  # the limits have their own test
    assert parse(source).evaluate({"a": 1, "b": {"c": "x"}}) in (True, False)
