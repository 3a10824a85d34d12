"""The validator: exact FILE:LINE:COL messages for broken files, a clean default file."""

from __future__ import annotations

from pathlib import Path

import pytest
from menu_harness import DEFAULT_MENU, MINI, OPERATIONS, write

from menus import KINDS, MenuError, load_menu, validate_file, validate_text

# Every kind, in listing order (the built-in ones first: see test_turn.py).
EXPECTED_TAGS = ", ".join(f"'{kind}'" for kind in KINDS)


def diagnostics(old: str, new: str) -> list[str]:
    assert old in MINI, old
    return [
        str(d) for d in validate_text(MINI.replace(old, new, 1), "m.yaml", operations=OPERATIONS)[1]
    ]


def test_default_menu_is_clean() -> None:
    assert validate_file(DEFAULT_MENU, operations=OPERATIONS) == []


def test_default_menu_starts_with_the_schema_modeline() -> None:
    first = DEFAULT_MENU.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=menus/menu.schema.json"


def test_mini_menu_is_clean() -> None:
    assert validate_text(MINI, "m.yaml", operations=OPERATIONS)[1] == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "target: balance}",
            "target: balanse}",
            [
                "m.yaml:20:66: error: node 'main': target 'balanse' does not exist",
                "m.yaml:22:3: error: node 'balance': unreachable from any entry point",
                "m.yaml:26:3: error: node 'done': unreachable from any entry point",
            ],
            id="dangling-target",
        ),
        pytest.param(
            "  operator:\n    kind: operator",
            "  lost:\n    kind: message\n    text: {ru: 'x', en: 'y'}\n"
            "  operator:\n    kind: operator",
            ["m.yaml:32:3: error: node 'lost': unreachable from any entry point"],
            id="unreachable-node",
        ),
        pytest.param(
            'text: {ru: "Готово", en: "Done"}',
            'text: {ru: "Готово"}',
            ["m.yaml:28:5: error: node 'done': text has no 'en' translation"],
            id="missing-translation",
        ),
        pytest.param(
            'text: {ru: "Позже", en: "Later"}',
            'text: {ru: "' + "Очень длинный текст " * 5 + '", en: "Later"}',
            [
                "m.yaml:31:5: error: node 'sorry': ru: the text is too long for one USSD page: "
                "100 UCS-2 characters, limit 80"
            ],
            id="page-too-long",
        ),
        pytest.param(
            "operation: balance",
            "operation: balanse",
            [
                "m.yaml:24:16: error: node 'balance': unknown operation 'balanse' (accept_gift, "
                "balance, cancel_gift, catalog, decline_gift, enroll, gift, gift_check, history, "
                "pending_gifts, redeem, sent_gifts, set_language, subscriber)"
            ],
            id="unknown-operation",
        ),
        pytest.param(
            "    kind: menu\n",
            "    kind: menu\n   bad: [\n",
            [
                "m.yaml:18:4: error: bad YAML: expected <block end>, but found "
                "'<block mapping start>'"
            ],
            id="bad-yaml",
        ),
        pytest.param(
            '    kind: message\n    text: {ru: "Готово"',
            '    kind: message\n    colour: red\n    text: {ru: "Готово"',
            ["m.yaml:28:5: error: node 'done': unknown field 'colour'"],
            id="unknown-field",
        ),
        pytest.param(
            "results: {ok: done, default: sorry}",
            "results: {ok: done, no_money: sorry, default: sorry}",
            ["m.yaml:25:35: error: node 'balance': balance never returns 'no_money'"],
            id="unknown-result-code",
        ),
        pytest.param(
            "results: {ok: done, default: sorry}",
            "results: {ok: done}",
            [
                "m.yaml:25:5: error: node 'balance': result codes not handled "
                "(add them or default): blocked, not_enrolled"
            ],
            id="unhandled-result-codes",
        ),
        pytest.param(
            "operation: balance\n",
            "operation: balance\n    args: {who: me}\n",
            ["m.yaml:25:17: error: node 'balance': balance takes no argument 'who'"],
            id="unknown-argument",
        ),
        pytest.param(
            'text: {ru: "Готово", en: "Done"}',
            'text: {ru: "Готово {x}", en: "Done"}',
            [
                "m.yaml:28:16: error: node 'done': placeholder '{x}' has no max_length: "
                "declare it in variables"
            ],
            id="undeclared-placeholder",
        ),
        pytest.param(
            '- {key: "2"',
            '- {key: "0"',
            ["m.yaml:21:15: error: node 'main': key '0' is the USSD back key"],
            id="navigation-key-clash",
        ),
        pytest.param(
            "target: operator}",
            'target: operator, when: "a = 1"}',
            [
                "m.yaml:21:85: error: node 'main': bad condition: unexpected character '=' "
                "(at offset 2)"
            ],
            id="bad-condition",
        ),
        pytest.param(
            'kind: message\n    text: {ru: "Позже"',
            'kind: note\n    text: {ru: "Позже"',
            [
                "m.yaml:30:11: error: node 'sorry': kind: Input tag 'note' found using 'kind' "
                f"does not match any of the expected tags: {EXPECTED_TAGS}"
            ],
            id="unknown-kind",
        ),
        pytest.param(
            "    kind: operator\n",
            "    kind: input\n",
            [
                "m.yaml:32:3: error: node 'operator': missing field 'var'",
                "m.yaml:32:3: error: node 'operator': missing field 'validator'",
                "m.yaml:32:3: error: node 'operator': missing field 'next'",
            ],
            id="missing-fields",
        ),
        pytest.param(
            'text: {ru: "Готово", en: "Done"}',
            'text: {ru: "Готово {n, plural, one {# балл}}", en: "Done"}',
            [
                "m.yaml:28:16: error: node 'done': bad template: a plural needs an 'other' "
                "branch (at offset 18)"
            ],
            id="plural-without-other",
        ),
        pytest.param(
            "  invalid_input:",
            "  invalid:",
            ["m.yaml:8:1: error: the engine's text 'invalid_input' is missing from texts"],
            id="missing-engine-text",
        ),
        pytest.param(
            "unavailable: sorry",
            "unavailable: later",
            ["m.yaml:7:14: error: target 'later' does not exist"],
            id="unknown-unavailable-node",
        ),
    ],
)
def test_broken_file_reports_line_and_column(old: str, new: str, expected: list[str]) -> None:
    assert diagnostics(old, new) == expected


def test_cycle_without_a_final_screen_is_a_dead_end() -> None:
    text = MINI.replace("target: operator}", "target: main}").replace(
        "target: balance}", "target: main}"
    )
    assert [str(d) for d in validate_text(text, "m.yaml", operations=OPERATIONS)[1]] == [
        "m.yaml:16:3: error: node 'main': dead end: no path from here to a final "
        "screen (message or operator)",
        "m.yaml:22:3: error: node 'balance': unreachable from any entry point",
        "m.yaml:26:3: error: node 'done': unreachable from any entry point",
    ]


def test_gsm7_page_counts_extension_characters_twice() -> None:
    # 60 GSM-7 chars + 60 extension chars = 180 septets + "\n0. Back"... a message has no back.
    fits = "a" * 62 + "[" * 60  # 182 septets exactly
    assert diagnostics('en: "Later"}', f'en: "{fits}"}}') == []
    over = "a" * 63 + "[" * 60
    assert diagnostics('en: "Later"}', f'en: "{over}"}}') == [
        "m.yaml:31:5: error: node 'sorry': en: the text is too long for one USSD page: "
        "183 GSM-7 septets, limit 182"
    ]


def test_cyrillic_page_of_80_characters_fits_and_81_does_not() -> None:
    assert diagnostics('ru: "Позже"', f'ru: "{"ж" * 80}"') == []
    assert diagnostics('ru: "Позже"', f'ru: "{"ж" * 81}"') == [
        "m.yaml:31:5: error: node 'sorry': ru: the text is too long for one USSD page: "
        "81 UCS-2 characters, limit 80"
    ]


def test_placeholders_count_at_their_declared_max_length() -> None:
    text = MINI.replace("texts:\n", "variables:\n  name: {max_length: 70}\ntexts:\n", 1)
    ok = text.replace('ru: "Позже"', 'ru: "Имя {name}"')
    assert validate_text(ok, "m.yaml", operations=OPERATIONS)[1] == []
    wide = text.replace('ru: "Позже"', 'ru: "Имя и фамилия {name}"')
    assert [d.message for d in validate_text(wide, "m.yaml", operations=OPERATIONS)[1]] == [
        "ru: the text is too long for one USSD page: 84 UCS-2 characters, limit 80"
    ]


def test_long_static_menu_is_paginated_not_an_error() -> None:
    options = "".join(
        f'      - {{key: "{k}", label: {{ru: "Пункт номер {k}", en: "Item {k}"}}, '
        "target: operator}\n"
        for k in range(3, 10)
    )
    text = MINI.replace("    options:\n", "    options:\n" + options, 1)
    assert validate_text(text, "m.yaml", operations=OPERATIONS)[1] == []


def test_single_option_too_long_for_a_page_is_an_error() -> None:
    label = "Очень " * 14
    found = diagnostics('label: {ru: "Баланс"', f'label: {{ru: "{label}"')
    assert found == [
        "m.yaml:20:20: error: node 'main': ru: option 1 is too long for one USSD page: "
        "104 UCS-2 characters, limit 80"
    ]


def test_validate_file_reports_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    [diagnostic] = validate_file(missing, operations=OPERATIONS)
    assert str(diagnostic).startswith(f"{missing}:1:1: error: cannot read:")


def test_load_menu_raises_with_diagnostics(tmp_path: Path) -> None:
    path = write(tmp_path, MINI.replace("target: balance}", "target: nowhere}"))
    with pytest.raises(MenuError) as caught:
        load_menu(path, operations=OPERATIONS)
    assert str(caught.value.diagnostics[0]) == (
        f"{path}:20:66: error: node 'main': target 'nowhere' does not exist"
    )
    assert "(and 2 more)" in str(caught.value)


def test_root_must_be_a_mapping() -> None:
    [diagnostic] = validate_text("- just\n- a list\n", "m.yaml", operations=OPERATIONS)[1]
    assert str(diagnostic) == "m.yaml:1:1: error: a menu file is a mapping (version, nodes, ...)"


def test_sms_templates_longer_than_one_sms_are_warnings() -> None:
    long_ru = "Очень длинное уведомление о подарке, которое не влезет в одну смс никак"  # noqa: RUF001
    text = MINI + f'sms:\n  notifications:\n    gift_received: {{ru: "{long_ru}", en: "Hi"}}\n'
    [warning] = validate_text(text, "m.yaml", operations=OPERATIONS)[1]
    assert str(warning) == (
        "m.yaml:37:25: warning: ru text can take 71 UCS-2 characters, more than one SMS (70); "
        "it will be sent in parts"
    )


def test_yaml_tags_cannot_construct_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = MINI.replace(
        "version: 1", f'version: !!python/object/apply:os.system ["touch {marker}"]'
    )
    model, found = validate_text(hostile, "m.yaml", operations=OPERATIONS)
    assert model is None
    assert found
    assert found[0].line == 1
    assert not marker.exists()


def test_duplicate_keys_are_reported() -> None:
    [diagnostic] = validate_text(
        MINI.replace("version: 1", "version: 1\nversion: 2"), "m.yaml", operations=OPERATIONS
    )[1]
    assert diagnostic.line == 2
    assert "duplicate" in diagnostic.message


def test_a_schema_error_does_not_hide_the_other_findings() -> None:
    """A node the schema refuses is reported; the rest of the file is still checked."""
    text = (
        MINI.replace('    text: {ru: "Готово", en: "Done"}', '    txt: {ru: "Готово", en: "Done"}')
        .replace("operation: balance", "operation: balanse")
        .replace('text: {ru: "Позже", en: "Later"}', 'text: {ru: "Позже"}')
    )
    assert [str(d) for d in validate_text(text, "m.yaml", operations=OPERATIONS)[1]] == [
        "m.yaml:24:16: error: node 'balance': unknown operation 'balanse' (accept_gift, "
        "balance, cancel_gift, catalog, decline_gift, enroll, gift, gift_check, history, "
        "pending_gifts, redeem, sent_gifts, set_language, subscriber)",
        "m.yaml:26:3: error: node 'done': missing field 'text'",
        "m.yaml:28:5: error: node 'done': unknown field 'txt'",
        "m.yaml:31:5: error: node 'sorry': text has no 'en' translation",
    ]


def test_every_schema_error_is_listed() -> None:
    text = MINI.replace("kind: message", "kind: mesage").replace("kind: action", "kind: acton")
    found = validate_text(text, "m.yaml", operations=OPERATIONS)[1]
    assert [(d.node, d.level) for d in found] == [
        ("balance", "error"),
        ("done", "error"),
        ("sorry", "error"),
    ]
