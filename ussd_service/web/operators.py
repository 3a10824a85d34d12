"""Operator accounts and the audit log of the console (tables of ``migrations/0002``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

#: Audit actions, one per thing an operator does in the console.
ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "claim",
    "close",
    "view_subscriber",
    "enrol",
)
CHANNEL = "help_desk"


@dataclass(frozen=True)
class Operator:
    id: int
    name: str
    password_hash: str
    active: bool
    password_set_at: datetime


_COLUMNS = "id, name, password_hash, active, password_set_at"


async def set_operator(pool: asyncpg.Pool, name: str, password_hash: str) -> tuple[Operator, bool]:
    """Create the operator, or give an existing one this password (and activate it).

    Returns the operator and True when it was created.
    """
    row = await pool.fetchrow(
        f"INSERT INTO operators (name, password_hash) VALUES ($1, $2) "  # noqa: S608
        f"ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
        f"active = true, password_set_at = now() "
        f"RETURNING {_COLUMNS}, (xmax = 0) AS created",
        name,
        password_hash,
    )
    assert row is not None
    created = bool(row["created"])
    return Operator(**{k: row[k] for k in _COLUMNS.split(", ")}), created


async def find_operator(pool: asyncpg.Pool, name: str) -> Operator | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM operators WHERE name = $1",  # noqa: S608
        name,
    )
    return Operator(**dict(row)) if row is not None else None


async def get_operator(pool: asyncpg.Pool, operator_id: int) -> Operator | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM operators WHERE id = $1",  # noqa: S608
        operator_id,
    )
    return Operator(**dict(row)) if row is not None else None


async def update_hash(pool: asyncpg.Pool, operator_id: int, password_hash: str) -> None:
    """Store a stronger hash of the same password (parameters raised since)."""
    await pool.execute(
        "UPDATE operators SET password_hash = $2 WHERE id = $1", operator_id, password_hash
    )


async def audit(
    pool: asyncpg.Pool,
    action: str,
    *,
    operator_id: int | None,
    operator_name: str,
    client: str | None = None,
    msisdn: str | None = None,
    handoff_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one action to the audit log."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    await pool.execute(
        "INSERT INTO operator_audit "
        "(operator_id, operator_name, action, channel, msisdn, handoff_id, client, details) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        operator_id,
        operator_name[:64],
        action,
        CHANNEL,
        msisdn,
        handoff_id,
        client,
        json.dumps(details or {}, default=str),
    )


async def audit_log(pool: asyncpg.Pool, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest audit entries, newest first."""
    rows = await pool.fetch(
        "SELECT id, operator_id, operator_name, action, channel, msisdn, handoff_id, client, "
        "details, at FROM operator_audit ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]
