"""Shorthands for ledger tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

import asyncpg

import ledger
from ledger import LedgerSettings, ManualClock, Violation

# Valid Russian mobile numbers (phonenumbers accepts +7 916 ...).
_numbers = itertools.count(1)


def new_msisdn() -> str:
    """A fresh valid number, different on every call."""
    return f"+7916{next(_numbers):07d}"


def key() -> str:
    return uuid.uuid4().hex


class LedgerHarness:
    """The ledger's functions bound to one pool, clock and settings."""

    def __init__(self, pool: asyncpg.Pool, clock: ManualClock, settings: LedgerSettings) -> None:
        self.pool = pool
        self.clock = clock
        self.settings = settings
        # Set by a test that breaks the database on purpose.
        self.corrupted = False

    @property
    def ctx(self) -> dict[str, Any]:
        return {"clock": self.clock, "settings": self.settings}

    async def member(
        self, points: int = 0, *, msisdn: str | None = None, expires_at: datetime | None = None
    ) -> str:
        """An enrolled subscriber holding ``points``."""
        number = msisdn or new_msisdn()
        assert (await ledger.enroll(self.pool, number, key=key(), **self.ctx)).ok
        # A member made for a test starts without their welcome SMS, so the
        # outbox holds only what the test does (the welcome has its own tests).
        await self.pool.execute(
            "DELETE FROM outbox WHERE event = 'welcome' AND msisdn = $1", number
        )
        if points:
            result = await ledger.accrue(
                self.pool, number, points, key=key(), expires_at=expires_at, **self.ctx
            )
            assert result.ok, result
        return number

    async def available(self, msisdn: str) -> int:
        result = await ledger.balance(self.pool, msisdn, **self.ctx)
        return result.unwrap().available

    async def violations(self) -> list[Violation]:
        return await ledger.check(self.pool)

    async def count(self, table: str) -> int:
        value: int = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return value

    async def snapshot(self) -> dict[str, Any]:
        """Everything a rejected operation must leave unchanged (operations excluded)."""
        tables = {
            "accounts": "SELECT id, balance FROM accounts ORDER BY id",
            "postings": "SELECT count(*) FROM postings",
            "lots": "SELECT id, remaining FROM point_lots ORDER BY id",
            "moves": "SELECT count(*) FROM lot_moves",
            "gifts": "SELECT id, status FROM gifts ORDER BY id",
            "redemptions": "SELECT id, status FROM redemptions ORDER BY id",
            "outbox": "SELECT count(*) FROM outbox",
            "subscribers": "SELECT id, status, language FROM subscribers ORDER BY id",
        }
        return {
            name: [tuple(row) for row in await self.pool.fetch(query)]
            for name, query in tables.items()
        }
