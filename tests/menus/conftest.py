"""Fixtures of the menus tests; helpers are in menu_harness.py."""

from __future__ import annotations

import pytest
from menu_harness import DEFAULT_MENU, OPERATIONS, ScriptedOperations

from menus import Menu, load_menu


@pytest.fixture(scope="session")
def default_menu() -> Menu:
    return load_menu(DEFAULT_MENU, operations=OPERATIONS)


@pytest.fixture
def ops() -> ScriptedOperations:
    return ScriptedOperations()
