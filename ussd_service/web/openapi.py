"""The web pages in ``/openapi.json``: HTML pages and form posts, for completeness.

Browsers are their only clients; what a machine needs is the JSON API under
``/v1``. Every POST needs the session cookie and its ``csrf_token`` field.
"""

from __future__ import annotations

from typing import Any

_HTML = {"text/html": {"schema": {"type": "string"}}}
_FORM = "application/x-www-form-urlencoded"
_TEXT = {"type": "string", "maxLength": 300}


def _page(summary: str) -> dict[str, Any]:
    return {
        "tags": ["web"],
        "summary": summary,
        "responses": {
            "200": {"description": "the page", "content": _HTML},
            "303": {"description": "signed out: to the sign-in page"},
            "503": {"description": "Redis or PostgreSQL unreachable: a 'try later' page"},
        },
    }


def _post(summary: str, *fields: str, nonce: bool = True) -> dict[str, Any]:
    names = ["csrf_token", *fields, *(["nonce"] if nonce else [])]
    return {
        "tags": ["web"],
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {name: dict(_TEXT) for name in names},
                        "required": ["csrf_token"],
                    }
                }
            },
        },
        "responses": {
            "200": {"description": "the form again, with what to correct", "content": _HTML},
            "303": {"description": "done (or signed out): the next page"},
            "400": {"description": "not a form"},
            "403": {"description": "missing or wrong csrf_token, or posted from another site"},
            "422": {"description": "the form again, with what to correct", "content": _HTML},
            "429": {"description": "too many tries: the form again, with when to retry"},
            "503": {"description": "Redis or PostgreSQL unreachable: a 'try later' page"},
        },
    }


def _path_param(name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": schema}]


def _with(operation: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    return {**operation, "parameters": params}


_GIFT = _path_param("gift_id", {"type": "integer", "minimum": 1})
_HANDOFF = _path_param("handoff_id", {"type": "integer", "minimum": 1})
_REWARD = _path_param("code", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{1,63}$"})
_MSISDN = _path_param("msisdn", {"type": "string", "examples": ["+79161234567"]})

WEB_PATHS: dict[str, dict[str, Any]] = {
    "/account": {"get": _page("the subscriber's account: balance and what expires when")},
    "/account/login": {
        "get": _page("sign-in: the phone number"),
        "post": _post("send a one-time code by SMS to the number", "phone", nonce=False),
    },
    "/account/login/code": {
        "get": _page("sign-in: the code from the SMS"),
        "post": _post("check the code; signed in when right", "code", nonce=False),
    },
    "/account/logout": {"post": _post("sign out", nonce=False)},
    "/account/history": {"get": _page("latest ledger movements")},
    "/account/rewards": {"get": _page("rewards by category")},
    "/account/rewards/{code}": {
        "get": _with(_page("confirm a redemption"), _REWARD),
        "post": _with(_post("redeem the reward"), _REWARD),
    },
    "/account/give": {
        "get": _page("give points: recipient and points"),
        "post": _post(
            "check the gift and show the recipient in full", "recipient", "points", nonce=False
        ),
    },
    "/account/give/confirm": {"post": _post("send the gift", "recipient", "points")},
    "/account/gifts": {"get": _page("gifts for me (accept, decline) and gifts I sent (cancel)")},
    "/account/gifts/{gift_id}/accept": {"post": _with(_post("accept a gift"), _GIFT)},
    "/account/gifts/{gift_id}/decline": {"post": _with(_post("decline a gift"), _GIFT)},
    "/account/gifts/{gift_id}/cancel": {"post": _with(_post("cancel a gift I sent"), _GIFT)},
    "/account/join": {"post": _post("join the programme")},
    "/account/language": {
        "get": _page("choose the language"),
        "post": _post("set the language of the site, menus and SMS", "language"),
    },
    "/operator": {"get": _page("operators: the queue of waiting handoffs")},
    "/operator/login": {
        "get": _page("operators: sign-in"),
        "post": _post("operators: sign in", "name", "password", nonce=False),
    },
    "/operator/logout": {"post": _post("operators: sign out", nonce=False)},
    "/operator/queue": {"get": _page("the queue's table alone (its page refreshes with it)")},
    "/operator/handoffs/{handoff_id}": {
        "get": _with(_page("a handoff: breadcrumb and subscriber card"), _HANDOFF)
    },
    "/operator/handoffs/{handoff_id}/claim": {
        "post": _with(_post("claim a waiting handoff", nonce=True), _HANDOFF)
    },
    "/operator/handoffs/{handoff_id}/close": {
        "post": _with(_post("close a handoff", nonce=True), _HANDOFF)
    },
    "/operator/subscribers": {
        "get": _with(
            _page("subscriber card: status, balance, history, pending gifts"),
            [{"name": "msisdn", "in": "query", "required": False, "schema": dict(_TEXT)}],
        )
    },
    "/operator/subscribers/{msisdn}/enrol": {
        "post": _with(
            _post("enrol the subscriber (channel help_desk)", "language", "back"), _MSISDN
        )
    },
    "/assets/{name}": {
        "get": {
            "tags": ["web"],
            "summary": "the pages' stylesheet and script",
            "parameters": _path_param("name", {"type": "string", "enum": ["site.css", "queue.js"]}),
            "responses": {"200": {"description": "the file"}, "404": {"description": "unknown"}},
        }
    },
}
