"""Versioned SQL migrations.

Files ``<package>/migrations/NNNN_name.sql`` are applied in order, each inside
its own transaction, and recorded in ``schema_migrations`` under the package's
name (the ledger's schema comes first; the service adds its own tables the
same way). A transaction-level advisory lock makes concurrent runs (two
processes starting at once) wait for each other, so each file is applied
exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

import asyncpg

# Arbitrary constant naming "the ledger's migration lock" among advisory locks.
MIGRATION_LOCK_ID = 4_555_0890
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    package    text NOT NULL,
    version    integer NOT NULL,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package, version)
)
"""
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL file of the schema history."""

    package: str
    version: int
    name: str
    sql: str


def available_migrations(package: str = "ledger") -> list[Migration]:
    """All migration files shipped with ``package``, in version order."""
    found = []
    for entry in files(package).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(package, int(match.group(1)), entry.name, entry.read_text("utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version number: {versions}")
    return found


async def migrate(conn: asyncpg.Connection, packages: tuple[str, ...] = ("ledger",)) -> list[str]:
    """Apply pending migrations of ``packages`` in order; return the names applied now."""
    applied_now: list[str] = []
    for migration in [m for package in packages for m in available_migrations(package)]:
        async with conn.transaction():
            # Taken before anything else, so even the bookkeeping table is
            # created by one process only.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
            await conn.execute(_CREATE_TABLE)
            done = await conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE package = $1 AND version = $2",
                migration.package,
                migration.version,
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (package, version, name) VALUES ($1, $2, $3)",
                migration.package,
                migration.version,
                migration.name,
            )
            applied_now.append(migration.name)
    return applied_now
