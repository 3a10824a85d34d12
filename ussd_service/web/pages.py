"""Rendering a page of either area: language, texts, CSRF token, flash message, assets."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import Session

from ussd_service.keys import SETTINGS
from ussd_service.web.security import csrf_token, new_nonce
from ussd_service.web.sessions import get_session
from ussd_service.web.texts import LANGUAGES, Texts, pick_language

ASSETS = {"site.css": "text/css", "queue.js": "text/javascript"}


@cache
def asset_bytes(name: str) -> bytes:
    return files("ussd_service.web").joinpath("static", name).read_bytes()


@cache
def asset_url(name: str) -> str:
    """``/assets/NAME?v=HASH``: cached by browsers, refreshed when the file changes."""
    digest = hashlib.sha256(asset_bytes(name)).hexdigest()[:10]
    return f"/assets/{name}?v={digest}"


async def asset(request: web.Request) -> web.Response:
    """``GET /assets/{name}``: the stylesheet and the queue's refresh script."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text="404: no such asset\n", content_type="text/plain")
    return web.Response(
        body=asset_bytes(name),
        content_type=ASSETS[name],
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def texts_for(request: web.Request, language: str) -> Texts:
    timezone = request.config_dict[SETTINGS].ledger_settings().timezone
    return Texts(language, timezone)


def language_of(request: web.Request, session: Session | None) -> str:
    """The page's language: ``?lang=`` (remembered), the session's, the browser's."""
    asked = request.query.get("lang", "")
    if asked in LANGUAGES:
        if session is not None and session.get("lang") != asked:
            session["lang"] = asked
        return asked
    if session is not None and session.get("lang") in LANGUAGES:
        return str(session["lang"])
    return pick_language(request.headers.get("Accept-Language", ""))


def flash(session: Session, text: str, kind: str = "ok") -> None:
    """A message for the next page shown (after a redirect)."""
    session["flash"] = {"kind": kind, "text": text}


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render ``template`` with what every page has (``t``, ``csrf``, ``nonce()``, ...)."""
    session = await get_session(request)
    language = language_of(request, session)
    message = session.pop("flash", None)
    base = {
        "t": texts_for(request, language),
        "lang": language,
        "languages": LANGUAGES,
        "csrf": csrf_token(session),
        "nonce": new_nonce,
        "flash": message,
        "asset": asset_url,
        "path": request.path,
        **_area_of(request.path),
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def _area_of(path: str) -> dict[str, str]:
    area = "operator" if path.startswith("/operator") else "account"
    return {"area": area, "home": f"/{area}"}


def render_outage(request: web.Request, home: str) -> web.Response:
    """The 503 page (Redis or PostgreSQL down): no session, the browser's language."""
    language = pick_language(request.headers.get("Accept-Language", ""))
    context = {
        "t": texts_for(request, language),
        "lang": language,
        "languages": LANGUAGES,
        "csrf": "",
        "nonce": new_nonce,
        "flash": None,
        "asset": asset_url,
        "path": request.path,
        **_area_of(home),
    }
    return aiohttp_jinja2.render_template("unavailable.html", request, context, status=503)
