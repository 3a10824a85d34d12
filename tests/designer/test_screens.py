# Russian screens are the point of these checks.
# ruff: noqa: RUF001
"""The screens book: every screen of every node, both languages, every channel, committed
as ``docs/screens.md`` and kept current (a menu change becomes a diff of what
subscribers read)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from designer.screens import BOOK, render_book, screens
from menus import Menu
from ussd_service.menu_files import load_menus
from ussd_service.sms_desk import REPLY_NAMES

ROOT = Path(__file__).resolve().parents[2]
MENU = ROOT / "menu_definitions.yaml"
REGENERATE = "ussd-service screens --output docs/screens.md"


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_menus(MENU).current


@pytest.fixture(scope="module")
async def book(menu: Menu) -> str:
    return await render_book(menu)


def test_the_committed_book_is_current(book: str) -> None:
    committed = (ROOT / BOOK).read_text(encoding="utf-8")
    assert committed == book, f"docs/screens.md is stale: run {REGENERATE} and review the diff"


def test_every_node_and_sms_text_has_its_section(menu: Menu, book: str) -> None:
    headings = set(re.findall(r"^#{3,4} `(\w+)`", book, flags=re.MULTILINE))
    sms = menu.model.sms
    assert headings == set(menu.nodes) | set(sms.replies) | set(sms.notifications)
    assert headings >= REPLY_NAMES


def test_screens_are_shown_in_every_language_and_channel(book: str) -> None:
    main = book.split("### `main`", 1)[1].split("\n### ", 1)[0]
    assert "#### ru" in main
    assert "#### en" in main
    assert "USSD, page 1 of 2 · CON · 72 chars, UCS-2, limit 80" in main
    assert "Voice, Polly.Joanna, en-US; waits for 1 key" in main
    # A prompt in another language names its voice.
    language = book.split("### `language`", 1)[1].split("\n### ", 1)[0]
    assert "For English, press 2.   [Polly.Joanna, en-US]" in language


def test_each_branch_of_a_text_is_shown(book: str) -> None:
    again = book.split("### `gift_recipient_again`", 1)[1].split("\n### ", 1)[0]
    assert "Себе дарить нельзя." in again
    assert "Этот номер не в программе бонусов." in again
    balance = book.split("#### `balance`", 1)[1].split("\n#### `", 1)[0]
    assert "\nБаланс: 1 250 баллов. Ожидают: 40 баллов.\n" in balance
    assert "ru · pending_in = 0 · " in balance
    assert "\nБаланс: 1 250 баллов.\n" in balance


def test_the_command_writes_the_book(tmp_path: Path, book: str) -> None:
    output = tmp_path / "screens.md"
    result = CliRunner().invoke(screens, ["--menu", str(MENU), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text(encoding="utf-8") == book


def test_a_broken_menu_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "menu.yaml"
    broken.write_text("version: 1\n", encoding="utf-8")
    result = CliRunner().invoke(screens, ["--menu", str(broken)])
    assert result.exit_code == 1
    assert "the menu does not load" in result.output
