"""What every page of the account and the console shares: headers, CSRF, nonces, outages.

* Each browser session holds a random CSRF token; every form carries it in a
  hidden ``csrf_token`` field, and a POST whose field does not match the
  session's (or whose ``Origin`` names another site) is refused with a 403
  before any handler runs. With ``SameSite=Lax`` cookies this is belt and braces.
* Each rendered form that changes something carries a fresh ``nonce``; the
  ledger's idempotency key is built from it, so a form sent twice (a double
  click, a browser retry) has one effect.
* A Redis or PostgreSQL outage, or one slower than ``PAGE_DEADLINE_S``, is a
  503 page that says to try later, never a traceback.
* Refusals the browser can only get by tampering (no CSRF token, a body that
  is not a form) are one-line pages.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import re
import secrets
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import Session
from multidict import MultiDict, MultiDictProxy
from redis.exceptions import RedisError

from ussd_service.api import BACKEND_ERRORS
from ussd_service.keys import SETTINGS
from ussd_service.web.limits import MAX_FIELD_CHARS, PAGE_DEADLINE_S, RETRY_AFTER_S
from ussd_service.web.sessions import get_session

log = structlog.get_logger(__name__)

CSRF_FIELD = "csrf_token"
NONCE_FIELD = "nonce"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
FORM_KEY = web.RequestKey("web_form", MultiDictProxy)
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (*BACKEND_ERRORS, RedisError)

_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def one_line_page(status: int, title: str, message: str, back: str) -> web.Response:
    """A minimal HTML page on one line (what a tampered or broken request gets)."""
    body = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        f'<p><a href="{html.escape(back)}">{html.escape(back)}</a></p></body></html>'
    )
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def new_nonce() -> str:
    """A fresh nonce for one rendered form (the idempotency key's tail)."""
    return secrets.token_urlsafe(18)


def form_nonce(form: MultiDictProxy[str]) -> str | None:
    """The form's nonce when it looks like one of ours."""
    value = form.get(NONCE_FIELD, "")
    return value if _NONCE.match(value) else None


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _origin_allowed(request: web.Request) -> bool:
    """A form posted from another site (its ``Origin``) is refused; no header is fine."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        host = urlsplit(origin).netloc.lower()
    except ValueError:  # not a URL at all (an unclosed IPv6 bracket)
        return False
    allowed = {request.host.lower()}
    public = request.config_dict[SETTINGS].public_url
    if public:
        allowed.add(urlsplit(public).netloc.lower())
    return host in allowed


def form_of(request: web.Request) -> MultiDictProxy[str]:
    """The POSTed form (read and checked by the middleware)."""
    return request[FORM_KEY]


def field(request: web.Request, name: str) -> str:
    """One form field as text, stripped ('' when absent or a file)."""
    value = form_of(request).get(name, "")
    return value.strip() if isinstance(value, str) else ""


def area_middlewares(home: str) -> list[Middleware]:
    """Middlewares of one area (``/account`` or ``/operator``), outermost first,
    to wrap around aiohttp-session's: outage pages and headers outside it, the
    CSRF check inside."""

    @web.middleware
    async def outage_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            async with asyncio.timeout(PAGE_DEADLINE_S):
                response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        except OUTAGE_ERRORS as exc:
            log.warning("web_backend_unavailable", error=type(exc).__name__)
            response = _outage_page(request, home)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @web.middleware
    async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST":
            try:
                form = await request.post()
            except (ValueError, LookupError, web.HTTPException):
                # Not a form, a charset nobody knows (LookupError), too large.
                return one_line_page(400, "400", "The form could not be read.", home)
            text_form = MultiDictProxy(
                MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
            )
            if any(len(v) > MAX_FIELD_CHARS for v in text_form.values()):
                return one_line_page(400, "400", "A field of the form is too long.", home)
            session = await get_session(request)
            expected = session.get("csrf")
            presented = text_form.get(CSRF_FIELD, "")
            if not isinstance(expected, str) or not _same(presented, expected):
                log.info("web_csrf_refused", path=request.path, had_token=bool(presented))
                return one_line_page(
                    403,
                    "403",
                    "This form has expired or did not come from this site: "
                    "go back, reload the page and send it again.",
                    home,
                )
            if not _origin_allowed(request):
                log.info("web_origin_refused", path=request.path)
                return one_line_page(403, "403", "This form came from another site.", home)
            request[FORM_KEY] = text_form
        return await handler(request)

    return [outage_and_headers, csrf]


def _outage_page(request: web.Request, home: str) -> web.Response:
    from ussd_service.web.pages import render_outage  # noqa: PLC0415 - avoids an import cycle

    response = render_outage(request, home)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def client_address(request: web.Request) -> str:
    """The client's address for rate limits.

    Behind a reverse proxy on this machine or a private network, the proxy's
    own address would lump every client together: then the right-most
    ``X-Forwarded-For`` entry (the one that proxy added) is the client.
    """
    peer = request.remote or "local"
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer[:64]
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and (peer_ip.is_loopback or peer_ip.is_private):
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return str(peer_ip)
