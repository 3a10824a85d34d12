"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ussd_service.keys import MENUS, METRICS, PG_POOL, REDIS

# A readiness probe must answer well inside a load balancer's timeout.
READY_CHECK_TIMEOUT_S = 2.0


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await probe
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


async def readyz(request: web.Request) -> web.Response:
    """200 when Redis and PostgreSQL answer and the menu is loaded; 503 otherwise."""
    app = request.app
    results = dict(
        await asyncio.gather(
            _check("redis", app[REDIS].ping()),
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
