"""Strict reading of gateway request bodies: every defect is a one-line 400."""

from __future__ import annotations

import json
import re
import unicodedata
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from ussd_service.hop import MAX_HOP_ID, MAX_SESSION_ID, MAX_USSD_INPUT, MalformedRequestError
from ussd_service.keys import MENUS

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
# Gateway and API bodies are flat objects; deeper nesting is never a real
# request, and thousands of brackets would exhaust the parser's recursion.
MAX_JSON_DEPTH = 4
# Characters PostgreSQL cannot store (NUL), that cannot be encoded (lone
# surrogates) or that break a one-line display (controls, line separators).
_UNSTORABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def check_json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise MalformedRequestError when ``text`` nests arrays/objects deeper than ``limit``.

    Counts brackets outside strings, before any parser recurses into them.
    """
    brackets = _JSON_BRACKET.findall(_JSON_STRING.sub("", text))
    depth = max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)
    if depth > limit:
        raise MalformedRequestError(f"the JSON is nested deeper than {limit} levels")


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    for char in value:
        if unicodedata.category(char) in _UNSTORABLE_CATEGORIES:
            return f"must not contain control characters (U+{ord(char):04X})"
    return None


async def _body_text(request: web.Request) -> str:
    body = await request.read()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequestError("the body is not valid UTF-8") from None


async def read_form(request: web.Request) -> dict[str, str]:
    """The URL-encoded form of ``request``; repeated fields keep the first value."""
    if request.content_type != FORM_TYPE:
        raise MalformedRequestError(f"expected Content-Type {FORM_TYPE}")
    text = await _body_text(request)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise MalformedRequestError("the form is not valid URL-encoded UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body of ``request``."""
    if request.content_type != JSON_TYPE:
        raise MalformedRequestError(f"expected Content-Type {JSON_TYPE}")
    text = await _body_text(request)
    check_json_depth(text)
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedRequestError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedRequestError("the body must be a JSON object")
    return value


def require(fields: dict[str, Any], name: str, *, max_len: int, allow_empty: bool = False) -> str:
    """A string field that must be present, of bounded length, printable."""
    if name not in fields or fields[name] is None:
        raise MalformedRequestError(f"missing field {name}")
    value = fields[name]
    if not isinstance(value, str):
        raise MalformedRequestError(f"field {name} must be a string")
    if not value and not allow_empty:
        raise MalformedRequestError(f"field {name} is empty")
    if len(value) > max_len:
        raise MalformedRequestError(f"field {name} is longer than {max_len} characters")
    if not value.isprintable():
        raise MalformedRequestError(f"field {name} contains control characters")
    return value


def session_id(fields: dict[str, Any], name: str) -> str:
    """A gateway session id field."""
    return require(fields, name, max_len=MAX_SESSION_ID)


def ussd_text(fields: dict[str, Any], name: str, *, required: bool = True) -> str:
    """A USSD input field: at most 182 characters (the USSD string limit)."""
    if not required and fields.get(name) is None:
        return ""
    return require(fields, name, max_len=MAX_USSD_INPUT, allow_empty=True)


def hop_id(fields: dict[str, Any], name: str) -> str | None:
    """An optional gateway hop id."""
    if fields.get(name) is None:
        return None
    return require(fields, name, max_len=MAX_HOP_ID)


def bad_request(reason: str) -> web.Response:
    """The 400 answer for a malformed gateway request."""
    return web.Response(status=400, text=reason + "\n", content_type="text/plain")


def service_code(request: web.Request) -> str:
    """The USSD code of the live menu (``*111*455#``): dialled shortcuts extend it."""
    return request.app[MENUS].current.model.entry.ussd.code
