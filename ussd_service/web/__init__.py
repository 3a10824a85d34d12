"""The web pages: the subscriber's account (``/account``) and the operators' console
(``/operator``), server-rendered with aiohttp-jinja2, in Russian and English.

Each area is a sub-application with its own session cookie (aiohttp-session,
kept in Redis: ``sessions``), CSRF check and outage page (``security``); both
call the ledger and the handoff queue through the same functions as the
menus and the API. ``add_routes`` mounts both and ``GET /assets/{name}``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ussd_service.config import Settings
from ussd_service.web import account, console, limits
from ussd_service.web.pages import asset
from ussd_service.web.security import area_middlewares
from ussd_service.web.sessions import RedisSessionStorage, session_middleware

__all__ = ["add_routes"]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ussd_service.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _area(
    settings: Settings,
    routes: web.RouteTableDef,
    *,
    home: str,
    cookie: str,
    idle_s: int,
    max_age_s: int,
    env: jinja2.Environment,
) -> web.Application:
    secure = urlsplit(settings.public_url or "").scheme == "https"
    storage = RedisSessionStorage(
        cookie_name=cookie, path=home, secure=secure, idle_s=idle_s, max_age_s=max_age_s
    )
    outage_and_headers, csrf = area_middlewares(home)
    area = web.Application(middlewares=[outage_and_headers, session_middleware(storage), csrf])
    area[aiohttp_jinja2.APP_KEY] = env
    area.router.add_routes(routes)
    return area


def add_routes(app: web.Application, settings: Settings) -> None:
    """Mount ``/account``, ``/operator`` and ``/assets/{name}`` on ``app``."""
    env = _environment()
    app.add_subapp(
        account.HOME,
        _area(
            settings,
            account.routes,
            home=account.HOME,
            cookie=limits.ACCOUNT_COOKIE,
            idle_s=limits.ACCOUNT_IDLE_S,
            max_age_s=limits.ACCOUNT_MAX_AGE_S,
            env=env,
        ),
    )
    app.add_subapp(
        console.HOME,
        _area(
            settings,
            console.routes,
            home=console.HOME,
            cookie=limits.OPERATOR_COOKIE,
            idle_s=limits.OPERATOR_IDLE_S,
            max_age_s=limits.OPERATOR_MAX_AGE_S,
            env=env,
        ),
    )
    app.router.add_get("/assets/{name}", asset, name="web_asset")
