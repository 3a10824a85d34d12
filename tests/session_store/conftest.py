"""Fixtures of the session store tests; the backends are in session_harness.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from session_harness import BACKENDS, Harness

from session_store import SessionStore


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Harness:
    factory: Callable[[aioredis.Redis], Harness] = BACKENDS[request.param]
    return factory(redis_client)


@pytest.fixture
def store(harness: Harness) -> SessionStore:
    return harness.store()
