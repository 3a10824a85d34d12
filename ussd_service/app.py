"""The aiohttp application: one place creates every pool, route and middleware."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

import ledger
from menus import MenuError, MenuRegistry
from session_store import RedisSessionStore, StoreUnavailableError
from session_store.dropoff import DropoffBuffer, RedisDropoffCounters
from ussd_service import api, gateways, handoffs, health, notifier, openapi, reminders
from ussd_service.backends import open_pg_pool, open_redis
from ussd_service.config import Settings
from ussd_service.dialogue import Dialogue
from ussd_service.dropoff_metrics import dropoff_metrics_ctx
from ussd_service.keys import (
    DIALOGUE,
    DROPOFF,
    MENUS,
    METRICS,
    PG_POOL,
    REDIS,
    SETTINGS,
    SMS_DESK,
)
from ussd_service.menu_files import load_menus
from ussd_service.menu_operations import CatalogCache
from ussd_service.metrics import Metrics
from ussd_service.operations import LedgerOperations
from ussd_service.sms_desk import SmsDesk
from ussd_service.web import add_routes as add_web_routes

log = structlog.get_logger(__name__)

# Gateway requests are a few hundred bytes; anything far larger is not one.
MAX_BODY_BYTES = 16 * 1024
PG_POOL_MAX = 20
POOL_CLOSE_TIMEOUT_S = 10.0
# A request id from the caller is kept only when it looks like one.
MAX_REQUEST_ID_LEN = 64


def _route_name(request: web.Request) -> str:
    """The route template (``/v1/subscribers/{msisdn}``), never the raw path."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id and route to every log line; count and time the request."""
    request_id = request.headers.get("X-Request-ID", "")
    # Echoed in a response header: short printable ASCII only.
    printable = request_id.isascii() and request_id.isprintable()
    if not printable or not 0 < len(request_id) <= MAX_REQUEST_ID_LEN:
        request_id = uuid.uuid4().hex
    route = _route_name(request)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, route=route)
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    except api.BACKEND_ERRORS as exc:
        # A backend outage that reached here (a route without its own
        # handling): a 503 in the route's answer shape, not a bug's traceback.
        response = api.unavailable(exc, json_body=request.path.startswith("/v1/"))
        status = response.status
    except Exception:
        # Handlers translate every expected failure themselves; this is a bug.
        log.exception("unhandled_error")
        response = web.json_response(
            {"error": "internal error", "request_id": request_id}, status=500
        )
    finally:
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.request_latency.labels(route).observe(time.perf_counter() - started)
    response.headers["X-Request-ID"] = request_id
    return response


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.redis_url, "resolve the Redis URL before creating the app"
    client = await open_redis(settings.redis_url)
    app[REDIS] = client
    yield
    await client.aclose()


async def _postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url, "resolve the database URL before creating the app"
    # min_size=0: the service starts (and reports "not ready") while PostgreSQL is down.
    pool = await open_pg_pool(settings.database_url, max_size=PG_POOL_MAX)
    app[PG_POOL] = pool
    yield
    try:
        # Graceful close waits for every connection to be released; bound it.
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
    except TimeoutError:
        log.warning("pg_pool_close_timeout")
        pool.terminate()


async def _dialogue_ctx(app: web.Application) -> AsyncIterator[None]:
    pool, redis = app[PG_POOL], app[REDIS]
    dropoff = app[DROPOFF] = DropoffBuffer(RedisDropoffCounters(redis))
    ledger_settings = app[SETTINGS].ledger_settings()
    catalog_cache = CatalogCache()

    def operations(msisdn: str, key_prefix: str, language: str | None = None) -> LedgerOperations:
        return LedgerOperations(
            pool,
            msisdn,
            key_prefix,
            settings=ledger_settings,
            language=language,
            catalog_cache=catalog_cache,
        )

    app[DIALOGUE] = Dialogue(
        store=RedisSessionStore(redis),
        menus=app[MENUS],
        operations=operations,
        handoffs=handoffs.handoff_sink(pool, redis),
        metrics=app[METRICS],
        dropoff=dropoff,
    )
    app[SMS_DESK] = SmsDesk(pool, app[MENUS], redis=redis, settings=ledger_settings)
    try:
        async with dropoff:
            yield
    except StoreUnavailableError as exc:
        # Redis is down at shutdown: the stop goes on; only unwritten counts are lost.
        log.warning("dropoff_flush_failed_at_exit", error=str(exc), pending=dropoff.pending)


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    """Periodic work of every process: ledger sweepers, deferred handoffs, expiry reminders."""
    pool, redis = app[PG_POOL], app[REDIS]
    tasks = [
        asyncio.create_task(
            ledger.run_sweeper(pool, settings=app[SETTINGS].ledger_settings()),
            name="ledger-sweeper",
        ),
        asyncio.create_task(handoffs.flush_deferred_forever(redis, pool), name="handoffs"),
        asyncio.create_task(reminders.run_reminders(pool, app[SETTINGS]), name="reminders"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _reload_on_sighup(app: web.Application) -> AsyncIterator[None]:
    """``kill -HUP``: load the menu file again; sessions in flight keep their version."""
    loop = asyncio.get_running_loop()

    def reload() -> None:
        path = app[SETTINGS].menu_file
        try:
            menu = app[MENUS].reload(path)
        except MenuError as exc:
            log.warning(
                "menu_reload_refused",
                file=str(path),
                errors=[str(d) for d in exc.diagnostics if d.level == "error"][:10],
            )
            return
        log.info("menu_reloaded", file=str(path), version=menu.version)

    loop.add_signal_handler(signal.SIGHUP, reload)
    yield
    loop.remove_signal_handler(signal.SIGHUP)


def create_app(
    settings: Settings,
    *,
    menus: MenuRegistry | None = None,
    background: bool = True,
    reload_signal: bool = False,
) -> web.Application:
    """Build the application; pools open when it starts and close when it stops.

    The menu file is loaded (and validated) here, so a broken file stops the
    service before it listens. ``background=False`` leaves out the periodic
    tasks (tests drive sweepers themselves); ``reload_signal=True`` (``serve``)
    reloads the menu file on SIGHUP.
    """
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[METRICS] = Metrics.create()
    app[MENUS] = menus or load_menus(settings.menu_file)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_postgres_ctx)
    app.cleanup_ctx.append(_dialogue_ctx)
    app.cleanup_ctx.append(dropoff_metrics_ctx())
    if reload_signal:
        app.cleanup_ctx.append(_reload_on_sighup)
    if background:
        app.cleanup_ctx.append(_background_ctx)
        app.cleanup_ctx.append(notifier.notifier_ctx)
    health.add_routes(app)
    openapi.add_routes(app)
    gateways.add_routes(app)
    api.add_routes(app)
    add_web_routes(app, settings)
    return app
