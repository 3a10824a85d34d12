"""Fixtures of the session store tests; the backends are in session_harness.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# tests/ is on sys.path (the root conftest), so tests/session_store/ is a
# namespace-package candidate that shadows the real, editable-installed
# ``session_store`` (the editable finder runs after the path finder). Putting
# the project root first makes ``import session_store`` find the real one.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
_shadow = sys.modules.get("session_store")
if _shadow is not None and getattr(_shadow, "__file__", None) is None:
    del sys.modules["session_store"]

import pytest  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from session_harness import BACKENDS, Harness  # noqa: E402

from session_store import SessionStore  # noqa: E402


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Harness:
    factory: Callable[[aioredis.Redis], Harness] = BACKENDS[request.param]
    return factory(redis_client)


@pytest.fixture
def store(harness: Harness) -> SessionStore:
    return harness.store()
