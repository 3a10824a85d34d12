"""Backends of the session store contract suite.

Each backend is a :class:`Harness`: it builds a store with given settings and
lets tests look at what only the backend can see (remaining TTLs). Adding a
backend means adding a harness class and its name to ``BACKENDS``, with the
fixture that gives its client (``CLIENT_FIXTURES``).

The same harness serves a standalone Redis and a Redis Cluster (3 masters, 3
replicas, started by ``tests/conftest.py:redis_cluster``): the store's commands
are single-key, so only the client differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from session_store import RedisClient, RedisSessionStore, SessionRef, SessionStore, StoreSettings
from session_store.keys import resume_key, session_key


class Harness(Protocol):
    def store(self, settings: StoreSettings | None = None) -> SessionStore: ...

    async def session_ttl_ms(self, ref: SessionRef) -> int: ...

    async def set_session_ttl_ms(self, ref: SessionRef, ms: int) -> None: ...

    async def resume_ttl_ms(self, channel: str, msisdn: str) -> int: ...


class RedisHarness:
    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.prefix = StoreSettings().key_prefix

    def store(self, settings: StoreSettings | None = None) -> SessionStore:
        return RedisSessionStore(self.client, settings)

    async def session_ttl_ms(self, ref: SessionRef) -> int:
        return int(await self.client.pttl(session_key(self.prefix, ref)))

    async def set_session_ttl_ms(self, ref: SessionRef, ms: int) -> None:
        assert await self.client.pexpire(session_key(self.prefix, ref), ms)

    async def resume_ttl_ms(self, channel: str, msisdn: str) -> int:
        return int(await self.client.pttl(resume_key(self.prefix, channel, msisdn)))


BACKENDS: dict[str, Callable[[RedisClient], Harness]] = {
    "redis": RedisHarness,
    "redis-cluster": RedisHarness,
}
#: The fixture (tests/conftest.py) that gives each backend's client, emptied.
CLIENT_FIXTURES = {"redis": "redis_client", "redis-cluster": "cluster_client"}
