"""The composition root of every command: where Redis and PostgreSQL come from.

``backing_servers`` resolves the URLs (starting embedded servers for the
missing ones); ``open_redis`` and ``open_pg_pool`` are the one place clients
and pools are made, for the app, the worker, the command line and the
designer tools alike; ``connected`` opens both for a command that needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
import structlog
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from embedded_servers import EmbeddedServers
from ledger.migrations import migrate
from session_store import REDIS_UNAVAILABLE_ERRORS, RedisClient
from ussd_service.config import Settings

log = structlog.get_logger(__name__)

# Packages whose ``migrations/`` folders make up the database schema, in order.
SCHEMA_PACKAGES = ("ledger", "ussd_service")


@contextlib.contextmanager
def embedded_backing(settings: Settings) -> Iterator[tuple[Settings, EmbeddedServers | None]]:
    """Settings with both URLs set, and the embedded servers behind the missing ones.

    None instead of the servers when both URLs are external. Servers this call
    started are stopped on exit; servers it joined (another process started
    them in the same data directory) keep running.
    """
    if not settings.embedded:
        yield settings, None
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
        resolved = settings.model_copy(
            update={
                "redis_url": settings.redis_url or urls.redis_url,
                "database_url": settings.database_url or urls.database_url,
            }
        )
        yield resolved, embedded
    finally:
        started = embedded.pids
        embedded.stop()
        if started:
            log.info("embedded_servers_stopped", pids=started)


@contextlib.contextmanager
def backing_servers(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs set, starting embedded servers for the missing ones."""
    with embedded_backing(settings) as (resolved, _servers):
        yield resolved


#: A ``DATABASE_URL`` query parameter the service reads itself (asyncpg would
#: send it to the server as a setting): how many prepared statements each
#: connection keeps (asyncpg's ``statement_cache_size``). Behind PgBouncer in
#: transaction mode a statement prepared on one server connection is not there
#: on the next: ``?statement_cache_size=0`` makes every query unnamed.
PG_STATEMENT_CACHE_PARAM = "statement_cache_size"


def pg_connect_args(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without the service's own parameters, and asyncpg keyword arguments for them."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(name == PG_STATEMENT_CACHE_PARAM for name, _ in query):
        return url, {}
    kept, kwargs = [], {}
    for name, value in query:
        if name != PG_STATEMENT_CACHE_PARAM:
            kept.append((name, value))
        elif value.isascii() and value.isdigit():
            kwargs["statement_cache_size"] = int(value)
        else:
            # InterfaceError: what callers already report as "cannot connect".
            raise asyncpg.InterfaceError(
                f"{PG_STATEMENT_CACHE_PARAM} must be a whole number (0 behind PgBouncer"
                f" in transaction mode), got {value!r}"
            )
    return urlunsplit(parts._replace(query=urlencode(kept))), kwargs


async def connect_pg(url: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection to ``url`` (its service parameters applied), for commands."""
    dsn, options = pg_connect_args(url)
    return await asyncpg.connect(dsn, **options, **kwargs)


async def apply_migrations(database_url: str) -> list[str]:
    """Apply pending ledger migrations; return the names applied now."""
    conn = await connect_pg(database_url)
    try:
        return await migrate(conn, SCHEMA_PACKAGES)
    finally:
        await conn.close()


# A hop holds one connection at a time (its read, then its save script), so
# the connections in use are at most the hops in flight. The service's pool
# hands them out without waiting: redis-py's blocking pool costs a hop ~50 us
# of CPU (a condition and a timer per command), a fifth of a navigation hop.
# Past this many at once a command fails and the hop gets the polite "try
# later" screen. On a cluster the limit is per node.
REDIS_MAX_CONNECTIONS = 1024
# Tools (``connected``) share a few connections: a command waits for one.
REDIS_POOL_WAIT_S = 2.0
REDIS_HEALTH_CHECK_S = 30
#: How long ``open_redis`` waits for ``INFO cluster`` before assuming a standalone server.
REDIS_DETECT_TIMEOUT_S = 2.0
#: Cluster client: a node that does not accept or answer within these is treated
#: as down (the client refreshes its slot map from another node and retries, with
#: backoff, for about 2 s in all: a failover in progress is bridged or the hop
#: gets its polite "try later" within its deadline).
REDIS_CLUSTER_CONNECT_TIMEOUT_S = 1.0
REDIS_CLUSTER_SOCKET_TIMEOUT_S = 2.0
# What a probe that cannot tell the mode may meet (a refused connection, an
# ACL without INFO, a server that is not Redis at all).
_PROBE_ERRORS: tuple[type[Exception], ...] = (*REDIS_UNAVAILABLE_ERRORS, RedisError, OSError)


class _CommandTableOnce(AsyncCommandsParser):
    """The cluster client's command table, asked for once, not at every topology refresh.

    redis-py (8.1) sends ``COMMAND`` to the first master it knows each time it
    refreshes the slot map after an error, and while a master is dead (before
    its replica takes over) that can be the dead one: the refresh fails, the
    client drops every connection, and hops on the healthy masters fail too
    (seen in ``tests/cluster/test_failover.py``). The table does not change
    with the topology; keys are located from it, the node is kept for the
    rare ``COMMAND GETKEYS``.
    """

    __slots__ = ()

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if self.commands:
            if node is not None:
                self.node = node
            return
        await super().initialize(node)


async def redis_is_cluster(url: str) -> bool | None:
    """Whether ``url`` is a node of a Redis Cluster (``INFO cluster``); None when unknown.

    A Unix socket is never a cluster node (Redis Cluster speaks TCP only), so
    the embedded server costs no probe.
    """
    if url.startswith("unix:"):
        return False
    probe = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_DETECT_TIMEOUT_S,
        socket_timeout=REDIS_DETECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        async with asyncio.timeout(REDIS_DETECT_TIMEOUT_S):
            info = await probe.info("cluster")
    except _PROBE_ERRORS as exc:
        log.warning("redis_mode_unknown", error=type(exc).__name__)
        return None
    finally:
        await probe.aclose()
    return bool(info.get("cluster_enabled"))


async def open_redis(
    url: str, *, max_connections: int = REDIS_MAX_CONNECTIONS, wait: bool = False
) -> RedisClient:
    """A client of ``url``: ``RedisCluster`` for a cluster node, else ``Redis``.

    The mode is asked of the server (``INFO cluster``), so one ``REDIS_URL``
    form serves both. When the server cannot be asked (down at start), the
    standalone client is used and ``/readyz`` says so if it turns out to be
    a cluster node. ``aclose()`` closes the client's connections either way.
    With ``wait``, a command waits up to ``REDIS_POOL_WAIT_S`` for a free
    connection of a standalone server instead of failing at once.
    """
    if await redis_is_cluster(url):
        cluster = aioredis.RedisCluster.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=REDIS_CLUSTER_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_CLUSTER_SOCKET_TIMEOUT_S,
            health_check_interval=REDIS_HEALTH_CHECK_S,
        )
        cluster.commands_parser = _CommandTableOnce()
        try:
            await cluster.initialize()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            # The first command tries again; the service starts and reports not ready.
            log.warning("redis_cluster_unavailable", error=type(exc).__name__)
        else:
            log.info("redis_cluster", nodes=len(cluster.get_nodes()))
        return cluster
    if wait:
        blocking = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=REDIS_POOL_WAIT_S,
            health_check_interval=REDIS_HEALTH_CHECK_S,
        )
        return aioredis.Redis.from_pool(blocking)
    pool = aioredis.ConnectionPool.from_url(
        url, max_connections=max_connections, health_check_interval=REDIS_HEALTH_CHECK_S
    )
    return aioredis.Redis.from_pool(pool)


async def open_pg_pool(url: str, *, max_size: int, min_size: int = 0) -> asyncpg.Pool:
    """An asyncpg pool; ``min_size=0`` lets a command start while PostgreSQL is down.

    ``?statement_cache_size=N`` in ``url`` sets asyncpg's cache of prepared
    statements per connection (default 100; 0 behind PgBouncer in transaction mode).
    """
    dsn, options = pg_connect_args(url)
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, reset=_keep_session, **options
    )
    assert pool is not None
    return pool


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool.

    asyncpg's default reset sends ``RESET ALL; UNLISTEN *; CLOSE ALL; SELECT
    pg_advisory_unlock_all()``: one more round trip per borrowed connection,
    as many as a whole ledger operation. Our code leaves no session state (no
    SET, LISTEN, cursors outside a transaction or session advisory locks), and
    asyncpg still rolls back a transaction left open before this is called.
    """


@dataclass(frozen=True)
class Backends:
    """The open Redis client and PostgreSQL pool of a command."""

    redis: RedisClient
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, *, pg_max_size: int = 4, redis_max_connections: int = 8
) -> AsyncIterator[Backends]:
    """Both backends of ``settings`` (URLs resolved), closed on exit."""
    assert settings.redis_url, "resolve the Redis URL first (backing_servers)"
    assert settings.database_url, "resolve the database URL first (backing_servers)"
    pool = await open_pg_pool(settings.database_url, max_size=pg_max_size)
    redis = await open_redis(settings.redis_url, max_connections=redis_max_connections, wait=True)
    try:
        yield Backends(redis, pool)
    finally:
        await redis.aclose()
        await pool.close()
