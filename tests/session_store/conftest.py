"""Fixtures of the session store tests; the backends are in session_harness.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from session_harness import BACKENDS, CLIENT_FIXTURES, Harness

from session_store import RedisClient, SessionStore


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest) -> Harness:
    factory: Callable[[RedisClient], Harness] = BACKENDS[request.param]
    return factory(request.getfixturevalue(CLIENT_FIXTURES[request.param]))


@pytest.fixture(params=sorted(CLIENT_FIXTURES))
def any_redis(request: pytest.FixtureRequest) -> RedisClient:
    """The emptied client of each backend in turn: a standalone Redis, a Redis Cluster."""
    client: RedisClient = request.getfixturevalue(CLIENT_FIXTURES[request.param])
    return client


@pytest.fixture
def store(harness: Harness) -> SessionStore:
    return harness.store()
