"""Who may call which endpoint: gateways, operators, Twilio.

Without a configured secret an endpoint answers loopback clients only, so a
development service is never open to the network by accident.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from ussd_service.hop import MalformedRequestError
from ussd_service.keys import SETTINGS

GATEWAY_TOKEN_HEADER = "X-Gateway-Token"  # noqa: S105 - a header name
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def _deny(status: type[web.HTTPException], reason: str) -> web.HTTPException:
    return status(text=reason + "\n", content_type="text/plain")


def is_loopback(request: web.Request) -> bool:
    """True when the peer is on this machine (no proxy in between)."""
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        # aiohttp reports Unix-socket peers without an address; they are local.
        return request.remote == "" or request.remote is None


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented credential with the configured one."""
    try:
        # aiohttp hands header bytes that are not UTF-8 over as lone
        # surrogates, which do not encode: such a credential is just wrong.
        presented = given.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(presented, expected.encode("utf-8"))


def _basic_password(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:
        # Not base64 (binascii.Error), non-ASCII text, or not UTF-8 once decoded.
        return None
    return decoded.partition(":")[2]


def check_gateway(request: web.Request) -> None:
    """Raise 401/403 unless the request carries the gateway secret (or is local)."""
    secret = request.app[SETTINGS].gateway_secret
    if secret is None:
        if not is_loopback(request):
            raise _deny(web.HTTPForbidden, "gateway endpoints answer loopback clients only")
        return
    presented = request.headers.get(GATEWAY_TOKEN_HEADER) or _basic_password(request)
    if presented is None or not _same(presented, secret):
        raise _deny(web.HTTPUnauthorized, f"missing or wrong {GATEWAY_TOKEN_HEADER}")


def check_api(request: web.Request) -> None:
    """Raise 401/403 unless the request carries the bearer token (or is local)."""
    token = request.app[SETTINGS].api_token
    if token is None:
        if not is_loopback(request):
            raise _deny(web.HTTPForbidden, "the API answers loopback clients only")
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(presented.strip(), token):
        raise web.HTTPUnauthorized(
            text="missing or wrong bearer token\n",
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="ussd-service"'},
        )


async def _signed_params(request: web.Request) -> MultiDict[str]:
    """Every value of every form field, as Twilio signs them.

    Twilio signs form posts; any other body signs as no fields (the route's
    parser refuses it anyway). A form that is not UTF-8 is a 400, not a crash.
    """
    if request.content_type != FORM_CONTENT_TYPE:
        return MultiDict()
    try:
        text = (await request.read()).decode("utf-8")
        return MultiDict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedRequestError("the form is not valid URL-encoded UTF-8") from None


async def check_twilio_signature(request: web.Request) -> None:
    """Raise 403 when ``TWILIO_AUTH_TOKEN`` is set and the signature does not match."""
    settings = request.app[SETTINGS]
    auth_token = settings.twilio_auth_token
    if auth_token is None:
        return
    params = await _signed_params(request)
    signature = request.headers.get(TWILIO_SIGNATURE_HEADER, "")
    # Twilio signs the URL it called: behind a proxy that is the public one.
    url = settings.public_url + request.path_qs if settings.public_url else str(request.url)
    validator = RequestValidator(auth_token)
    if not validator.validate(url, params, signature):
        raise _deny(web.HTTPForbidden, f"invalid {TWILIO_SIGNATURE_HEADER}")
