"""What the store needs of a Redis client, standalone or Cluster.

``RedisClient`` is either client of ``redis.asyncio``: the store's commands are
single-key (or single-slot scripts), so both serve it alike. The caller picks
one (``ussd_service.backends.open_redis`` detects a cluster) and owns it.
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.exceptions import ClusterError, ReadOnlyError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
