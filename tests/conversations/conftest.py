"""Collects ``tests/conversations/*.yaml``: each conversation (per channel,
gateway and language) becomes one pytest item, run through real HTTP against a
real app on the test's fresh database and emptied Redis (the fixtures of
tests/conftest.py).

Item ids read ``tests/conversations/gift.yaml::gift_ok[ussd-ru]``. The same
files run alone with ``ussd-service test-conversations``.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from designer.conversations import (
    Conversation,
    ConversationEnv,
    ConversationFailedError,
    load_file,
    run_conversation,
)
from menus import MenuRegistry
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus

HERE = Path(__file__).resolve().parent
MENU_FILE = HERE.parents[1] / "menu_definitions.yaml"


@pytest.fixture(scope="session")
def conversation_menus() -> MenuRegistry:
    """The default menu, loaded and compiled once for every conversation."""
    return load_menus(MENU_FILE)


@pytest.fixture
async def conversation_env(
    settings: Settings,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    conversation_menus: MenuRegistry,
) -> ConversationEnv:
    """A fresh database and an empty Redis; the runner serves the app itself."""
    return ConversationEnv(settings=settings, pool=pg_pool, menus=conversation_menus)


def _test_function(variants: dict[str, Conversation]) -> Callable[..., Awaitable[None]]:
    async def test(conversation_env: ConversationEnv, variant: str) -> None:
        report = None
        try:
            await run_conversation(variants[variant], conversation_env)
        except ConversationFailedError as exc:
            report = str(exc)
        if report is not None:
            # Outside the except block: the report alone, no chained traceback.
            pytest.fail(report, pytrace=False)

    first = next(iter(variants.values()))
    test.__name__ = f"test_{first.name}"
    test.__doc__ = f"Conversation {first.name} ({first.where})."
    test.pytestmark = [pytest.mark.parametrize("variant", list(variants))]  # type: ignore[attr-defined]
    return test


class ConversationFile(pytest.Module):
    """A YAML file of conversations, collected as if it were a test module:
    one test per conversation, parametrised by channel and language."""

    def _getobj(self) -> Any:
        module = types.ModuleType(self.path.stem)
        module.__file__ = str(self.path)
        by_name: dict[str, dict[str, Conversation]] = {}
        for conversation in load_file(self.path):
            by_name.setdefault(conversation.name, {})[conversation.variant] = conversation
        for name, variants in by_name.items():
            setattr(module, f"test_{name}", _test_function(variants))
        return module


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and file_path.parent == HERE:
        return ConversationFile.from_parent(parent, path=file_path)
    return None
