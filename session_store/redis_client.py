"""What the store needs of a Redis client, standalone or Cluster.

``RedisClient`` is either client of ``redis.asyncio``: the store's commands are
single-key (or single-slot scripts), so both serve it alike. The caller picks
one (``ussd_service.backends.open_redis`` detects a cluster) and owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ClusterError, ReadOnlyError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store.errors import StoreUnavailableError

_T = TypeVar("_T")

RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster

#: What an outage looks like through either client: refused or dropped
#: connections, timeouts (both clients); a master down or a failover under way
#: (``ClusterDownError``/``MasterDownError``, ``TRYAGAIN``, a write that reached a
#: node just demoted to replica), redirections that did not settle ("TTL
#: exhausted"), and no node of the cluster reachable (``RedisClusterException``,
#: which is not a ``RedisError``; ``SlotNotCoveredError`` is one of those).
REDIS_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    TryAgainError,
    ReadOnlyError,
    RedisClusterException,
)


def closed_under_the_command(exc: AttributeError) -> bool:
    """True for redis-py's own race, not a bug of ours: a connection closed mid-write.

    The cluster client of redis-py 8.1 disconnects a node's idle connections
    when a command to that node fails (a master down), and the disconnect can
    land on a connection another command has just taken: its write then finds
    no writer (``'NoneType' object has no attribute 'writelines'``). That is
    an outage of the node, as the ConnectionError the others get.
    """
    if exc.obj is not None or exc.name not in {"writelines", "write", "drain"}:
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "redis" in Path(tb.tb_frame.f_code.co_filename).parts


#: Sends of one command whose connection was closed under it (see store_command).
CLOSED_CONNECTION_ATTEMPTS = 3
_CLOSED_CONNECTION_PAUSE_S = 0.02


async def store_command(call: Callable[[], Awaitable[_T]]) -> _T:
    """Run one command of the store; outages become :class:`StoreUnavailableError`.

    redis-py 8.1's cluster client closes connections that another command may
    have just taken: a failed node's idle ones, and every node's when a node
    answers CLUSTERDOWN (as the others do for a moment during a failover,
    before the replica is promoted). The write then finds no writer and the
    command reaches no server, so it is sent again, up to
    ``CLOSED_CONNECTION_ATTEMPTS`` times: even a counter's increment is not
    counted twice, since the first send never left.
    """
    for attempt in range(1, CLOSED_CONNECTION_ATTEMPTS + 1):
        try:
            return await call()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        except AttributeError as exc:
            if not closed_under_the_command(exc):
                raise
            if attempt == CLOSED_CONNECTION_ATTEMPTS:
                raise StoreUnavailableError("redis: connection closed under the command") from exc
        await asyncio.sleep(_CLOSED_CONNECTION_PAUSE_S * attempt)
    raise AssertionError("unreachable")
