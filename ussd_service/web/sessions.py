"""Browser sessions kept in Redis, behind aiohttp-session.

The cookie holds only a random session id (256 bits): ``HttpOnly``,
``SameSite=Lax``, ``Secure`` when the service's public address is ``https``,
scoped to its area's path (``/account`` or ``/operator``), and without an
expiry date, so it dies with the browser. The record lives in Redis under
``redis_keys.web_session_key`` (one key, so Redis Cluster is fine) with an
idle TTL renewed by each request and an absolute age checked on load;
signing out deletes the record, so a copied cookie is dead at once. Signing
in always starts a new session id (no fixation).

aiohttp-session gives the ``Session`` object and the cookie handling
(``AbstractStorage``); the middleware and ``get_session`` are this module's,
because aiohttp-session's keep the session under string request keys, which
aiohttp 3.14 warns about (``NotAppKeyWarning``) on every request.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import AbstractStorage, Session, SessionData

from ussd_service.keys import REDIS
from ussd_service.redis_keys import web_session_key

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


class RedisSessionStorage(AbstractStorage):
    """aiohttp-session storage over the app's Redis client (``app[REDIS]``)."""

    def __init__(
        self, *, cookie_name: str, path: str, secure: bool, idle_s: int, max_age_s: int
    ) -> None:
        super().__init__(
            cookie_name=cookie_name,
            path=path,
            secure=secure,
            httponly=True,
            samesite="Lax",
            max_age=None,
        )
        self.idle_s = idle_s
        self.max_age_s = max_age_s

    def _session(self, identity: str | None, data: SessionData | None) -> Session:
        # aiohttp-session drops the data of a session older than max_age.
        return Session(identity, data=data, new=identity is None, max_age=self.max_age_s)

    async def new_session(self) -> Session:
        return self._session(None, None)

    async def load_session(self, request: web.Request) -> Session:
        cookie = self.load_cookie(request)
        if cookie is None or not _SESSION_ID.match(cookie):
            return self._session(None, None)
        redis = request.config_dict[REDIS]
        key = web_session_key(cookie)
        raw = await redis.get(key)
        if raw is None:
            return self._session(None, None)
        try:
            data = json.loads(raw)
        except ValueError:
            return self._session(None, None)
        if not isinstance(data, dict):
            return self._session(None, None)
        await redis.expire(key, self.idle_s)
        return self._session(cookie, cast(SessionData, data))

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        redis = request.config_dict[REDIS]
        identity = session.identity
        if session.empty:
            if identity is not None:
                await redis.delete(web_session_key(str(identity)))
            self.save_cookie(response, "")
            return
        if identity is None:
            identity = secrets.token_urlsafe(32)
        data = json.dumps(self._get_session_data(session))
        await redis.set(web_session_key(str(identity)), data, ex=self.idle_s)
        self.save_cookie(response, str(identity))


STORAGE = web.RequestKey("web_session_storage", RedisSessionStorage)
SESSION = web.RequestKey("web_session", Session)


def session_middleware(storage: RedisSessionStorage) -> Middleware:
    """Load the session on first use; save it after the handler when it changed."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[STORAGE] = storage
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            await _save(request, storage, exc)
            raise
        await _save(request, storage, response)
        return response

    return middleware


async def _save(
    request: web.Request, storage: RedisSessionStorage, response: web.StreamResponse
) -> None:
    session = request.get(SESSION)
    # ``_changed`` is how aiohttp-session itself tells a session to save.
    if session is not None and session._changed:
        await storage.save_session(request, response, session)


async def get_session(request: web.Request) -> Session:
    """The request's session (loaded from Redis once)."""
    session = request.get(SESSION)
    if session is None:
        session = await request[STORAGE].load_session(request)
        request[SESSION] = session
    return session


async def fresh_session(request: web.Request) -> Session:
    """Forget the current session (its record too) and start a new one: on sign-in.

    What the old session held that the new one needs is the caller's to copy.
    """
    old = await get_session(request)
    if old.identity is not None:
        await request.config_dict[REDIS].delete(web_session_key(str(old.identity)))
    session = await request[STORAGE].new_session()
    session.changed()
    request[SESSION] = session
    return session


async def end_session(request: web.Request) -> None:
    """Sign out: the record is deleted and the cookie cleared."""
    session = await get_session(request)
    session.invalidate()
