"""Reading menu files: the fast reader and ruamel.yaml read the same data; positions found late."""

from __future__ import annotations

from pathlib import Path

import pytest
from menu_harness import DEFAULT_MENU, MINI, OPERATIONS
from ruamel.yaml import YAML

from menus import validate_text
from menus.locate import Checker, Locator, read_yaml


def _read(text: str) -> object:
    checker = Checker("m.yaml", Locator(None))
    doc = read_yaml(text, checker)
    assert checker.diagnostics == []
    return doc


def _ordered(value: object) -> object:
    """``value`` with every mapping as its list of items: key order counts (menus list options)."""
    if isinstance(value, dict):
        return [(key, _ordered(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


@pytest.mark.parametrize("path", [DEFAULT_MENU, Path("menu_definitions.yaml")], ids=str)
def test_menu_files_read_as_ruamel_yaml_reads_them(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _ordered(_read(text)) == _ordered(YAML(typ="rt").load(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Merge keys, times, dates, tags: read as before (ruamel.yaml, YAML 1.2).
        (
            "a: &x {b: 1, c: 2}\nd:\n  <<: *x\n  c: 3\n",
            {"a": {"b": 1, "c": 2}, "d": {"b": 1, "c": 3}},
        ),
        ("a: 12:30:00\nb: 'yes'\nc: yes\n", {"a": "12:30:00", "b": "yes", "c": "yes"}),
        ("\ufeffa: 1\n", {"a": 1}),
        ("a: 017\nb: 0o17\nc: 1_000\n", {"a": 17, "b": 15, "c": 1000}),
        ("---\na: [x, 'y']\n...\n", {"a": ["x", "y"]}),
    ],
)
def test_yaml_forms_read_as_ruamel_yaml_reads_them(text: str, expected: object) -> None:
    assert _read(text) == expected


def test_several_documents_are_refused_in_ruamel_yamls_words() -> None:
    [finding] = validate_text(MINI + "---\nversion: 2\n", "m.yaml", operations=OPERATIONS)[1]
    assert (finding.line, finding.message) == (35, "bad YAML: but found another document")


def test_a_finding_in_a_file_read_fast_has_its_position() -> None:
    text = MINI.replace("target: balance}", "target: balanse}", 1)
    findings = validate_text(text, "m.yaml", operations=OPERATIONS)[1]
    assert str(findings[0]) == "m.yaml:20:66: error: node 'main': target 'balanse' does not exist"
