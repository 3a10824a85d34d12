"""Versions: a session finishes on the version it started on; a bad reload is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from menu_harness import MINI, OPERATIONS, ScriptedOperations, write

from menus import MenuError, MenuRegistry, UnknownVersionError


async def test_session_keeps_its_version_and_bad_reload_is_refused(tmp_path: Path) -> None:
    ops = ScriptedOperations()
    path = write(tmp_path, MINI)
    registry = MenuRegistry.from_file(path, operations=OPERATIONS)
    v1 = registry.current
    started = await v1.start("ussd", ops)
    assert started.state.version == v1.version

    # Version 2 renames the balance screen's text.
    write(tmp_path, MINI.replace('en: "Done"', 'en: "Finished"'))
    v2 = registry.reload(path)
    assert v2.version != v1.version
    assert registry.current is v2

    # The old session continues on version 1.
    menu = registry.get(started.state.version)
    assert menu is v1
    finished = await menu.step(started.state, "1", ops)
    assert finished.state.language == "ru"
    assert finished.screen.text == "Готово"
    english = await menu.step(
        type(started.state)(v1.version, "main", "en", "ussd"), "1", ScriptedOperations()
    )
    assert english.screen.text == "Done"

    # A new session starts on version 2.
    fresh = await registry.current.start("ussd", ops, language="en")
    done = await registry.get(fresh.state.version).step(fresh.state, "1", ops)
    assert done.screen.text == "Finished"

    # Version 3 is broken: refused, version 2 stays live, both old versions remain.
    write(tmp_path, MINI.replace("target: balance}", "target: nowhere}"))
    with pytest.raises(MenuError) as caught:
        registry.reload(path)
    assert "target 'nowhere' does not exist" in str(caught.value)
    assert registry.current is v2
    assert registry.versions == [v1.version, v2.version]


def test_reloading_the_same_content_keeps_one_version(tmp_path: Path) -> None:
    path = write(tmp_path, MINI)
    registry = MenuRegistry.from_file(path, operations=OPERATIONS)
    first = registry.current
    assert registry.reload(path) is first
    assert registry.versions == [first.version]


def test_unknown_version(tmp_path: Path) -> None:
    registry = MenuRegistry.from_file(write(tmp_path, MINI), operations=OPERATIONS)
    with pytest.raises(UnknownVersionError):
        registry.get("0000")


async def test_step_refuses_a_state_of_another_version(tmp_path: Path) -> None:
    registry = MenuRegistry.from_file(write(tmp_path, MINI), operations=OPERATIONS)
    ops = ScriptedOperations()
    started = await registry.current.start("ussd", ops)
    v2 = registry.reload(write(tmp_path, MINI.replace('en: "Done"', 'en: "Over"')))
    with pytest.raises(ValueError, match="session of menu version"):
        await v2.step(started.state, "1", ops)
