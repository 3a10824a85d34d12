"""Conversation tests catch a broken menu with a readable message; the standalone runner."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from designer.conversations import (
    ConversationEnv,
    ConversationFailedError,
    ConversationFileError,
    load_file,
    run_conversation,
)
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus

ROOT = Path(__file__).resolve().parents[2]
MENU = ROOT / "menu_definitions.yaml"
CONVERSATIONS = ROOT / "tests" / "conversations"
CLI = str(Path(sys.executable).parent / "ussd-service")
SAMPLE = Path(__file__).with_name("broken_menu_failure.txt")


def _broken_menu(tmp_path: Path) -> Path:
    """The default menu with one text changed and one target moved."""
    text = MENU.read_text(encoding="utf-8")
    changed = text.replace(
        'en: "Gift sent. The recipient', 'en: "Gift is on its way. The recipient'
    )
    # Options 1 and 2 of the main menu swap targets (both stay reachable).
    balance = '{key: "1", label: {ru: "Баланс", en: "Balance"}, target: balance_run}'
    history = '{key: "2", label: {ru: "История", en: "History"}, target: history}'
    assert balance in changed
    assert history in changed
    moved = changed.replace(balance, balance.replace("balance_run", "history")).replace(
        history, history.replace("target: history", "target: balance_run")
    )
    path = tmp_path / "broken_menu.yaml"
    path.write_text(moved, encoding="utf-8")
    return path


def _conversation(file: str, test_id: str):
    return next(c for c in load_file(CONVERSATIONS / file) if c.test_id == test_id)


async def _fails(conversation, settings: Settings, pool, menu: Path) -> str:
    env = ConversationEnv(settings, pool, menus=load_menus(menu))
    with pytest.raises(ConversationFailedError) as failure:
        await run_conversation(conversation, env)
    return str(failure.value)


async def test_a_changed_text_fails_with_the_conversation_and_the_screen(
    settings: Settings, pg_pool, redis_client, tmp_path: Path
) -> None:
    message = await _fails(
        _conversation("gift.yaml", "gift_ok[ussd-en]"), settings, pg_pool, _broken_menu(tmp_path)
    )
    assert message.startswith("conversation gift_ok[ussd-en] (+7916*****01) failed\n")
    assert "  at tests/conversations/gift.yaml:" in message
    assert "expect: 'Gift sent. The recipient can accept it until'" in message
    assert "the screen does not contain 'Gift sent. The recipient can accept it until'" in message
    # The conversation so far, each input and the page it got...
    assert "  > dial *111*455#" in message
    assert "  > send 89162000002" in message
    assert "│Give 150 points to +7 916     │" in message
    # ...and the screen that did not match, as the handset shows it.
    screen = message.split("screen that did not match:\n", 1)[1]
    assert "│Gift is on its way. The       │" in screen
    assert "END · " in screen
    if os.environ.get("UPDATE_SAMPLES"):
        SAMPLE.write_text(message + "\n", encoding="utf-8")


async def test_a_moved_target_fails_readably(
    settings: Settings, pg_pool, redis_client, tmp_path: Path
) -> None:
    message = await _fails(
        _conversation("balance.yaml", "balance_expiring[ussd-ru]"),
        settings,
        pg_pool,
        _broken_menu(tmp_path),
    )
    assert "no match for the regular expression" in message
    assert "│История:" in message.split("screen that did not match:", 1)[1]


async def test_the_default_menu_passes_the_same_conversations(
    settings: Settings, pg_pool, redis_client
) -> None:
    env = ConversationEnv(settings, pg_pool)
    await run_conversation(_conversation("gift.yaml", "gift_ok[ussd-en]"), env)


def test_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "conversations:\n  - name: x\n    steps:\n      - dial\n      - press: '1'\n",
        encoding="utf-8",
    )
    with pytest.raises(ConversationFileError, match=r"bad.yaml:5: unknown step 'press'"):
        load_file(bad)


def test_every_default_menu_node_is_visited_by_some_conversation() -> None:
    """Coverage of the tree: every node id appears on a path some conversation walks.

    Checked loosely by the texts: each USSD-reachable final or interactive node's
    Russian or English text prefix occurs in an expectation of some conversation.
    """
    expectations = "\n".join(
        str(step.arg)
        for path in sorted(CONVERSATIONS.glob("*.yaml"))
        for conversation in load_file(path)
        for step in conversation.steps
        if step.kind.startswith("expect")
    )
    model = load_menus(MENU).current.model
    # gift_bad_number (the ledger's invalid_recipient) is unreachable through
    # the menu: the input node's phone validator refuses such numbers first.
    unreachable = {"gift_bad_number"}
    missing = []
    for node_id, node in model.nodes.items():
        text = getattr(node, "text", None)
        if text is None or isinstance(text, str):
            continue
        ru = (getattr(text, "model_extra", None) or {}).get("ru", "")
        head = ru.split("{")[0].split("\n")[0].strip()[:12]
        if head and head not in expectations and node_id not in unreachable:
            missing.append(node_id)
    assert missing == [], f"nodes whose text no conversation expects: {missing}"


async def test_standalone_runner_passes_and_fails(servers, tmp_path: Path, redis_client) -> None:
    """``test-conversations`` alone: exit 0 on the default menu, 1 and a report on a broken one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data_dir = servers.embedded.data_dir if servers.embedded is not None else tmp_path / "var"

    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "test-conversations",
            str(CONVERSATIONS / "gift.yaml"),
            "--data-dir",
            str(data_dir),
            "-k",
            "gift_ok[ussd-*",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode()

    code, output = await run()
    assert code == 0, output
    assert "ok   gift.yaml::gift_ok[ussd-ru]" in output
    assert "2 passed, 0 failed" in output
    code, output = await run("--menu", str(_broken_menu(tmp_path)))
    assert code == 1, output
    assert "ok   gift.yaml::gift_ok[ussd-ru]" in output
    assert "FAIL gift.yaml::gift_ok[ussd-en]" in output
    assert "screen that did not match:" in output
    assert "1 passed, 1 failed" in output
