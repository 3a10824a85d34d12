"""Where the service's Redis and PostgreSQL come from: the URLs, or embedded servers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
import structlog

from ledger.migrations import migrate
from ussd_service.config import Settings
from ussd_service.embedded import EmbeddedServers

log = structlog.get_logger(__name__)

# Packages whose ``migrations/`` folders make up the database schema, in order.
SCHEMA_PACKAGES = ("ledger", "ussd_service")


@contextlib.contextmanager
def backing_servers(settings: Settings) -> Iterator[Settings]:
    """Yield settings with both URLs set, starting embedded servers for missing ones.

    Servers this call started are stopped on exit; servers it joined (another
    process started them in the same data directory) keep running.
    """
    if not settings.embedded:
        yield settings
        return
    embedded = EmbeddedServers(
        settings.data_dir, redis=not settings.redis_url, postgres=not settings.database_url
    )
    urls = embedded.start()
    log.info(
        "embedded_servers",
        data_dir=str(embedded.data_dir),
        started=embedded.started_any,
        pids=embedded.pids,
    )
    try:
        yield settings.model_copy(
            update={
                "redis_url": settings.redis_url or urls.redis_url,
                "database_url": settings.database_url or urls.database_url,
            }
        )
    finally:
        started = embedded.pids
        embedded.stop()
        if started:
            log.info("embedded_servers_stopped", pids=started)


async def apply_migrations(database_url: str) -> list[str]:
    """Apply pending ledger migrations; return the names applied now."""
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn, SCHEMA_PACKAGES)
    finally:
        await conn.close()
