"""What conversations stand on: the ledger state they start from, and scratch servers.

``apply_given`` puts the ledger in a conversation's ``given`` state and
``do_action`` changes it behind the session's back. ``sandbox_servers`` and
``ScratchDatabases`` are for the standalone runner: it empties Redis and
creates databases, so it only ever runs on embedded servers of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import ledger
from designer.conversations.spec import Conversation, ConversationFailedError
from embedded_servers import EmbeddedServers
from ussd_service.backends import apply_migrations
from ussd_service.config import Settings
from ussd_service.hop import normalise_msisdn

# A database URL whose server cannot exist: ``ledger: down``.
UNREACHABLE_DB_HOST = "/nonexistent-ussd-ledger"
TEMPLATE_DB = "ussd_conversations_template"
MAINTENANCE_DB = "postgres"
_keys = itertools.count(1)


def key(tag: str) -> str:
    """A fresh idempotency key: every ledger change of a fixture is a new one."""
    return f"conv-{tag}-{uuid.uuid4().hex[:12]}-{next(_keys)}"


async def available(pool: asyncpg.Pool, msisdn: str) -> int:
    """The subscriber's available points (0 for a number never seen)."""
    summary = await ledger.subscriber_summary(pool, msisdn)
    return 0 if summary is None else int(summary.balance.available)


async def _setup_subscriber(
    pool: asyncpg.Pool, msisdn: str, spec: Mapping[str, Any], language: str | None
) -> None:
    if language is not None:
        await ledger.set_language(pool, msisdn, language, key=key("lang"))
    if spec.get("enrolled") or spec.get("balance"):
        await ledger.enroll(pool, msisdn, key=key("enroll"))
    if spec.get("balance"):
        await ledger.accrue(
            pool, msisdn, int(spec["balance"]), key=key("accrue"), reason="conversation"
        )
    if spec.get("status") == "blocked":
        await ledger.block(pool, msisdn, key=key("block"))


async def apply_given(conv: Conversation, pool: asyncpg.Pool) -> None:
    """Put the ledger in the state the conversation starts from."""
    given = conv.given
    if given.get("catalog", "default") == "default":
        await ledger.load_catalog(pool)
    others: Mapping[str, Any] = given.get("subscribers") or {}
    for number, spec in others.items():
        await _setup_subscriber(pool, normalise_msisdn(str(number)), spec or {}, None)
    status = given.get("status")
    mine = {
        "enrolled": given.get("enrolled", False) or status == "blocked",
        "balance": given.get("balance", 0),
        "status": status,
    }
    await _setup_subscriber(pool, conv.msisdn, mine, conv.language)
    for gift in given.get("pending_gifts") or []:
        sender = normalise_msisdn(str(gift["from"]))
        points = int(gift["points"])
        await ledger.enroll(pool, sender, key=key("enroll"))
        await ledger.accrue(pool, sender, points, key=key("accrue"), reason="conversation")
        outcome = await ledger.gift(pool, sender, conv.msisdn, points, key=key("gift"))
        if outcome.code.value != "ok":
            raise ConversationFailedError(f"{conv.where}: given pending gift: {outcome.code.value}")
    for gift in given.get("sent_gifts") or []:
        recipient = normalise_msisdn(str(gift["to"]))
        await ledger.enroll(pool, recipient, key=key("enroll"))
        outcome = await ledger.gift(pool, conv.msisdn, recipient, int(gift["points"]), key=key("g"))
        if outcome.code.value != "ok":
            raise ConversationFailedError(f"{conv.where}: given sent gift: {outcome.code.value}")


async def do_action(pool: asyncpg.Pool, msisdn: str, value: Any) -> str:
    """Run a ``do`` step on the ledger; what was done, in words."""
    action, arg = next(iter(value.items())) if isinstance(value, Mapping) else (value, None)
    if action == "block":
        await ledger.block(pool, msisdn, key=key("block"))
    elif action == "enroll":
        await ledger.enroll(pool, msisdn, key=key("enroll"))
    elif action == "accrue":
        await ledger.accrue(pool, msisdn, int(str(arg)), key=key("accrue"), reason="conversation")
    elif action == "decline_pending_gifts":
        outcome = await ledger.pending_gifts(pool, msisdn)
        items = outcome.value.items if outcome.value is not None else []
        for item in items:
            await ledger.decline_gift(pool, msisdn, item.gift_id, key=key("decline"))
    elif action == "withdraw_rewards":
        async with pool.acquire() as conn:
            await conn.execute("UPDATE rewards SET active = false")
    return f"{action}{'' if arg is None else f' {arg}'}"


def ledger_down(settings: Settings) -> Settings:
    """``settings`` with a database URL no server answers (``given: {ledger: down}``)."""
    parts = urlsplit(settings.database_url or "postgresql://postgres@/ussd")
    query = f"host={UNREACHABLE_DB_HOST}"
    return settings.model_copy(
        update={"database_url": urlunsplit(parts._replace(netloc="postgres@", query=query))}
    )


# --------------------------------------------------------------------------- standalone servers


def with_database(url: str, database: str) -> str:
    """``url`` with its database name replaced."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextlib.contextmanager
def sandbox_servers(data_dir: Path | None) -> Iterator[tuple[str, str]]:
    """Embedded Redis and PostgreSQL URLs, never the configured ones (REDIS_URL etc.).

    ``data_dir`` joins servers already running there; without it they run in
    a temporary directory removed afterwards.
    """
    own = data_dir is None
    directory = data_dir or Path(tempfile.mkdtemp(prefix="ussd-conv-"))
    servers = EmbeddedServers(directory, durable=False)
    try:
        urls = servers.start()
        yield urls.redis_url, urls.database_url
    finally:
        servers.stop()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


class ScratchDatabases:
    """One migrated template database, cloned into a fresh database per conversation."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._admin: asyncpg.Connection | None = None

    async def __aenter__(self) -> ScratchDatabases:
        # CREATE/DROP DATABASE run outside any pool, on the maintenance database.
        admin = await asyncpg.connect(with_database(self._url, MAINTENANCE_DB))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
            await apply_migrations(with_database(self._url, TEMPLATE_DB))
        except BaseException:
            await admin.close()
            raise
        self._admin = admin
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        admin, self._admin = self._admin, None
        if admin is None:
            return
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        finally:
            await admin.close()

    @contextlib.asynccontextmanager
    async def fresh(self, name: str) -> AsyncIterator[str]:
        """The URL of a new database ``name`` cloned from the template, dropped on exit."""
        admin = self._admin
        assert admin is not None, "enter ScratchDatabases first"
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}" STRATEGY FILE_COPY')
        try:
            yield with_database(self._url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
