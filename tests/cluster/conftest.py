"""Fixtures of the Redis Cluster tests: every app and client here talks to a real cluster.

The cluster (3 masters, 3 replicas on loopback ports, from the same
``redis-server`` binary as the embedded Redis) is ``tests/conftest.py:redis_cluster``,
started once per run on first use. Here ``settings`` points the service at one
of its nodes, so ``create_app`` detects the cluster and ``client`` (the shared
fixture) serves hops through the cluster client; ``redis_client`` is the
emptied cluster. The hop tests' own modules are importable, so their core
flows run again here unchanged (``test_hops_on_cluster.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from embedded_servers.redis_cluster import LocalRedisCluster
from ussd_service.config import Settings

TESTS = Path(__file__).resolve().parents[1]
MENU_FILE = TESTS.parent / "menu_definitions.yaml"
# The hop tests and their phones (hops_harness), imported as they import themselves.
if str(TESTS / "hops") not in sys.path:
    sys.path.insert(0, str(TESTS / "hops"))


@pytest.fixture
def redis_client(cluster_client: aioredis.RedisCluster) -> aioredis.RedisCluster:
    """The emptied cluster, under the name the shared fixtures and hop tests use."""
    return cluster_client


@pytest.fixture
def settings(redis_cluster: LocalRedisCluster, database_url: str) -> Settings:
    """The service on the cluster (REDIS_URL at one node) and this test's database."""
    return Settings(redis_url=redis_cluster.url, database_url=database_url, menu_file=MENU_FILE)
