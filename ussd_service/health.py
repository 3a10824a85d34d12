"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from session_store import RedisClient
from ussd_service.keys import MENUS, METRICS, PG_POOL, REDIS

# A readiness probe must answer well inside a load balancer's timeout.
READY_CHECK_TIMEOUT_S = 2.0
#: The key each process writes and reads back to prove Redis takes a hop's
#: commands: ``ussd:ready:{<host>:<pid>}``, one slot per process on a cluster.
READY_KEY_PREFIX = "ussd:ready:"
READY_KEY_TTL_MS = 60_000


class NotReadyError(Exception):
    """A dependency answers, but not as a hop needs it; the message says how."""


def ready_key() -> str:
    """This process's readiness key (hash-tagged: one slot, whatever the cluster)."""
    return f"{READY_KEY_PREFIX}{{{socket.gethostname()}:{os.getpid()}}}"


def redis_mode(client: RedisClient) -> str:
    """``cluster`` or ``standalone``: which client the service talks to Redis with."""
    return "cluster" if isinstance(client, aioredis.RedisCluster) else "standalone"


async def redis_probe(client: RedisClient) -> None:
    """Write a key and read it back through ``client``, as a hop would.

    A standalone client also asks ``INFO cluster``: a service that started
    while Redis was unreachable could not tell a cluster node from a server,
    and on a cluster node it would get MOVED for most keys.
    """
    if isinstance(client, aioredis.Redis):
        info = await client.info("cluster")
        if info.get("cluster_enabled"):
            raise NotReadyError("REDIS_URL is a Redis Cluster node; restart to use the cluster")
    key, token = ready_key(), secrets.token_hex(8)
    await client.set(key, token, px=READY_KEY_TTL_MS)
    value = await client.get(key)
    if value is None or (value.decode() if isinstance(value, bytes) else value) != token:
        raise NotReadyError("the readiness key did not read back")


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await probe
    except NotReadyError as exc:
        return name, f"error: {exc}"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


async def readyz(request: web.Request) -> web.Response:
    """200 when Redis takes a write and a read, PostgreSQL answers and the menu is loaded."""
    app = request.app
    results = dict(
        await asyncio.gather(
            _check("redis", redis_probe(app[REDIS])),
            _check("postgres", app[PG_POOL].fetchval("SELECT 1")),
        )
    )
    # The app cannot exist without a valid menu (create_app loads it), so
    # "loaded" is a fact here; the version says which one serves new sessions.
    results["menu"] = "ok"
    ready = all(v == "ok" for v in results.values())
    return web.json_response(
        {
            "status": "ready" if ready else "unavailable",
            "checks": results,
            "menu_version": app[MENUS].current.version,
            "redis_mode": redis_mode(app[REDIS]),
        },
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of this process's metrics."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """Register the operational endpoints."""
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
