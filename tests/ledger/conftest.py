"""Fixtures of the ledger tests: a ledger on a fresh database, checked after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from ledger_harness import LedgerHarness

from ledger import DEFAULT_SETTINGS, LedgerSettings, ManualClock, load_catalog


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings() -> LedgerSettings:
    return DEFAULT_SETTINGS


@pytest.fixture
async def lg(
    pg_pool: asyncpg.Pool, clock: ManualClock, settings: LedgerSettings
) -> AsyncIterator[LedgerHarness]:
    """A ledger with the default catalogue; ``ledger check`` must pass when the test ends."""
    await load_catalog(pg_pool, settings=settings)
    harness = LedgerHarness(pg_pool, clock, settings)
    yield harness
    if not harness.corrupted:
        assert await harness.violations() == []
