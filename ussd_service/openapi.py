"""The OpenAPI description of the service.

The admin API and operational endpoints are described here by hand; every
gateway endpoint comes from its dialect's routes. A test compares the document
with the application's router, so an endpoint cannot be added or removed
without this document following.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

import ledger
from ussd_service import api, events
from ussd_service.channels import DIALECTS
from ussd_service.web.openapi import WEB_PATHS

_JSON = "application/json"


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {_JSON: {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


_CHECKS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        "menu_version": {"type": "string", "description": "version new sessions start on"},
        "redis_mode": {
            "type": "string",
            "enum": ["standalone", "cluster"],
            "description": "the client REDIS_URL was found to need (INFO cluster)",
        },
    },
    "required": ["status", "checks"],
}

_API_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_AUTH_ERRORS = {
    "401": {"description": "missing or wrong credentials"},
    "403": {"description": "no credentials configured and the client is not on loopback"},
}


_STR = {"type": "string"}
_OUTBOX_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "event": {"type": "string", "enum": list(ledger.outbox.EVENTS)},
        "msisdn": {"type": "string", "description": "E.164"},
        "payload": {"type": "object"},
        "status": {"type": "string", "enum": list(api.OUTBOX_STATUSES)},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": "string", "format": "date-time"},
        "last_error": {"type": ["string", "null"], "description": "why the last try failed"},
        "created_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "dlr": {
            "type": ["object", "null"],
            "description": "the latest delivery report from the SMS gateway (null: none yet)",
            "properties": {
                "status": {
                    "type": "string",
                    "enum": ["buffered", "accepted", "delivered", "failed"],
                },
                "attempt": {"type": "integer", "description": "the send it reports on"},
                "at": {"type": "string", "format": "date-time"},
                "detail": {"type": ["string", "null"], "description": "the SMSC's words"},
            },
        },
        "delivery": {
            "type": ["object", "null"],
            "description": "how a sent message went out: via the SMS gateway, or logged "
            "(no gateway configured); null when unknown (record expired or not sent)",
            "properties": {
                "via": {"type": "string", "enum": ["gateway", "log"]},
                "text": _STR,
                "at": {"type": "string", "format": "date-time"},
            },
        },
    },
}

_HANDOFF = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "msisdn": {"type": "string", "description": "E.164"},
        "channel": {"type": "string", "enum": ["ussd", "ivr", "sms"]},
        "reason": _STR,
        "language": _STR,
        "breadcrumb": {"type": "array", "items": _STR},
        "balance": {"type": ["object", "null"]},
        "status": {"type": "string", "enum": ["waiting", "claimed", "closed"]},
        "claimed_by": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "claimed_at": {"type": ["string", "null"], "format": "date-time"},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_ID_PARAM = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _handoff_action(summary: str, conflict: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["operators"],
            "security": _API_SECURITY,
            "parameters": _ID_PARAM,
            "responses": {
                "200": _json_response("the handoff after the change", _HANDOFF),
                "404": {"description": "no such handoff"},
                "409": {"description": conflict},
                **_AUTH_ERRORS,
            },
        }
    }


_MSISDN_PARAM = [
    {
        "name": "msisdn",
        "in": "path",
        "required": True,
        "schema": _STR,
        "description": "as people type it (+7 916 123-45-67, 89161234567...); E.164 in answers",
    }
]
_ERROR = {"type": "object", "properties": {"error": _STR, "details": {"type": "object"}}}
_LEDGER_ERRORS = {
    "400": _json_response("malformed request; `error` says what is wrong", _ERROR),
    "409": _json_response(
        "refused by the subscriber's state (not_enrolled, blocked, idempotency_conflict...)",
        _ERROR,
    ),
    "422": _json_response("refused by a business rule; `error` is the ledger's code", _ERROR),
    **_AUTH_ERRORS,
}


def _settlement(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": "Idempotent: a repeated callback gets the first answer.",
            "tags": ["provisioning"],
            "security": _API_SECURITY,
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "requestBody": {
                "required": False,
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"reason": {"type": "string", "maxLength": 200}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json_response("the settled redemption"),
                "404": _json_response("no such redemption", _ERROR),
                **_LEDGER_ERRORS,
            },
        }
    }


_IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 128}
_STAFF_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_ENROLLMENT_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "channel": {"type": "string", "enum": ["self", "shop", "help_desk", "web"]},
        "staff_id": _STAFF_ID,
        "document_checked": {"type": "boolean"},
    },
}
_ENROLLMENT = {
    "type": "object",
    "properties": {
        "msisdn": _STR,
        "status": _STR,
        "enrolled_at": {"type": ["string", "null"], "format": "date-time"},
        "channel": {"type": ["string", "null"]},
        "staff_id": {"type": ["string", "null"]},
        "document_checked": {"type": ["boolean", "null"]},
        "already": {"type": "boolean"},
    },
}
_BLOCK_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reason"],
    "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
        "staff_id": _STAFF_ID,
    },
}
_BLOCK_RESULT = {
    "type": "object",
    "properties": {
        "msisdn": _STR,
        "status": {"type": "string", "enum": ["not_enrolled", "active", "blocked"]},
        "changed": {"type": "boolean"},
        "gifts_returned": {"type": "integer"},
    },
}


def _status_change(summary: str, description: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": description
            + " Idempotent with `Idempotency-Key`; `X-Operator` names the caller in the audit.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "parameters": [
                *_MSISDN_PARAM,
                {"name": "Idempotency-Key", "in": "header", "schema": _IDEMPOTENCY_KEY},
                {"name": "X-Operator", "in": "header", "schema": _STR},
            ],
            "requestBody": {"required": True, "content": {_JSON: {"schema": _BLOCK_BODY}}},
            "responses": {
                "200": _json_response("the status now", _BLOCK_RESULT),
                "404": _json_response("a number never seen (unblock)", _ERROR),
                **_LEDGER_ERRORS,
            },
        }
    }


PATHS: dict[str, dict[str, Any]] = {
    "/v1/accruals": {
        "post": {
            "summary": "Credit points to a member.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "msisdn": _STR,
                                "points": {"type": "integer", "minimum": 1},
                                "reason": _STR,
                                "idempotency_key": {"type": "string", "maxLength": 128},
                                "expires_at": {"type": "string", "format": "date-time"},
                            },
                            "required": ["msisdn", "points", "reason", "idempotency_key"],
                        }
                    }
                },
            },
            "responses": {"201": _json_response("the accrual"), **_LEDGER_ERRORS},
        }
    },
    "/v1/events": {
        "post": {
            "summary": "Apply the earning rules to an event and credit what it earns.",
            "description": "The rules of `USSD_EARNING_RULES_FILE` turn a top-up (roubles), "
            "tenure (whole months) or joining into accruals, each a lot with its own expiry. "
            "Idempotent: a retry with the same `idempotency_key` and the same event gets the "
            "first answer and credits nothing; the same key with another event is a 409 "
            "`idempotency_conflict`. A number that is not a member (never seen, not enrolled, "
            "blocked) is a 409 with the ledger's code.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "msisdn": {"type": "string", "maxLength": 32},
                                "kind": {"type": "string", "enum": list(ledger.EVENT_KINDS)},
                                "amount": {
                                    "type": "number",
                                    "minimum": 0,
                                    "description": "topup: roubles (up to 2 decimals); "
                                    "tenure: whole months; joined: leave out or 0",
                                },
                                "occurred_at": {
                                    "type": "string",
                                    "format": "date-time",
                                    "description": "with a time zone; not in the future",
                                },
                                "idempotency_key": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": events.MAX_IDEMPOTENCY_KEY,
                                },
                            },
                            "required": ["msisdn", "kind", "occurred_at", "idempotency_key"],
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "201": _json_response(
                    "what the event earned (the same answer for its retries)",
                    {
                        "type": "object",
                        "properties": {
                            "msisdn": _STR,
                            "kind": {"type": "string", "enum": list(ledger.EVENT_KINDS)},
                            "points": {"type": "integer", "description": "credited in all"},
                            "available": {"type": "integer"},
                            "accruals": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "rule": _STR,
                                        "points": {"type": "integer"},
                                        "expires_at": {"type": "string", "format": "date-time"},
                                        "capped": {
                                            "type": "string",
                                            "description": "the cap that cut it, if any",
                                        },
                                    },
                                },
                            },
                            "skipped": {
                                "type": "array",
                                "description": "rules of the kind that granted nothing, and why",
                                "items": {
                                    "type": "object",
                                    "properties": {"rule": _STR, "reason": _STR},
                                },
                            },
                        },
                    },
                ),
                **_LEDGER_ERRORS,
                "503": _json_response(
                    "no earning rules loaded, or a backend is unreachable", _ERROR
                ),
            },
        }
    },
    "/v1/subscribers/{msisdn}": {
        "get": {
            "summary": "A subscriber's status, language, balance and soonest expiry.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "parameters": _MSISDN_PARAM,
            "responses": {
                "200": _json_response(
                    "the subscriber",
                    {
                        "type": "object",
                        "properties": {
                            "msisdn": _STR,
                            "status": {
                                "type": "string",
                                "enum": ["not_enrolled", "active", "blocked"],
                            },
                            "language": _STR,
                            "balance": {
                                "type": "object",
                                "properties": {
                                    "available": {"type": "integer"},
                                    "pending_in": {"type": "integer"},
                                    "pending_out": {"type": "integer"},
                                },
                            },
                            "expiring": {
                                "type": "object",
                                "properties": {
                                    "points": {"type": "integer"},
                                    "date": {"type": ["string", "null"], "format": "date"},
                                },
                            },
                            "enrollment": {
                                "type": ["object", "null"],
                                "description": "how they joined (null before joining)",
                            },
                            "block": {
                                "type": ["object", "null"],
                                "description": "while blocked: the latest block (who, why, when)",
                            },
                        },
                    },
                ),
                "404": _json_response("a number never seen", _ERROR),
                **_LEDGER_ERRORS,
            },
        }
    },
    "/v1/subscribers/{msisdn}/enrollment": {
        "post": {
            "summary": "Join the programme (and queue the welcome SMS).",
            "description": (
                "Optional body: how they joined. `staff_id` is required for `shop` and "
                "`help_desk`. Without a body the channel is `self`. A member already is "
                "answered 200 with their enrolment and `already: true` (nothing recorded, "
                "no second welcome); a blocked number is a 409."
            ),
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "parameters": [
                *_MSISDN_PARAM,
                {"name": "Idempotency-Key", "in": "header", "schema": _IDEMPOTENCY_KEY},
            ],
            "requestBody": {
                "required": False,
                "content": {_JSON: {"schema": _ENROLLMENT_BODY}},
            },
            "responses": {"200": _json_response("the enrolment", _ENROLLMENT), **_LEDGER_ERRORS},
        }
    },
    "/v1/subscribers/{msisdn}/block": _status_change(
        "Bar a number (audited); gifts pending to it go back to their senders.",
        "Blocking a blocked number changes nothing and is audited (`changed: false`). "
        "Gifts the blocked member sent stay pending for their recipients.",
    ),
    "/v1/subscribers/{msisdn}/unblock": _status_change(
        "Lift a block (audited): a member again, or not_enrolled if they never joined.",
        "Unblocking a number that is not blocked changes nothing (`changed: false`); "
        "a number never seen is a 404.",
    ),
    "/v1/subscribers/{msisdn}/history": {
        "get": {
            "summary": "Latest ledger movements of a member, newest first.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "parameters": [
                *_MSISDN_PARAM,
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            ],
            "responses": {
                "200": _json_response("the history"),
                "404": _json_response("a number never seen", _ERROR),
                **_LEDGER_ERRORS,
            },
        }
    },
    "/v1/redemptions/{id}/fulfilled": _settlement("Provisioning delivered the reward."),
    "/v1/redemptions/{id}/failed": _settlement(
        "Provisioning could not deliver the reward; the points go back."
    ),
    "/v1/handoffs": {
        "get": {
            "summary": "Sessions handed to operators, oldest first.",
            "tags": ["operators"],
            "security": _API_SECURITY,
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["waiting", "claimed", "closed"]},
                }
            ],
            "responses": {
                "200": _json_response(
                    "handoffs",
                    {
                        "type": "object",
                        "properties": {"items": {"type": "array", "items": _HANDOFF}},
                    },
                ),
                "400": {"description": "unknown status"},
                **_AUTH_ERRORS,
            },
        }
    },
    "/v1/handoffs/{id}/claim": _handoff_action(
        "An operator takes a waiting handoff (header X-Operator names them).",
        "the handoff is not waiting",
    ),
    "/v1/handoffs/{id}/close": _handoff_action(
        "An operator finishes a handoff.", "the handoff is already closed"
    ),
    "/v1/gifts/{id}/cancel": {
        "post": {
            "summary": "The sender takes back a gift not yet answered (an operator for them).",
            "description": "The points go back to the sender; both sides are told by SMS. "
            "Idempotent: a retry with the same Idempotency-Key (default: one per gift) gets "
            "the first answer and moves nothing again.",
            "tags": ["ledger"],
            "security": _API_SECURITY,
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "the gift's id (sent_gifts, the outbox's gift_id)",
                },
                {"name": "Idempotency-Key", "in": "header", "schema": _STR},
            ],
            "requestBody": {
                "required": False,
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "msisdn": {
                                    "type": "string",
                                    "maxLength": 32,
                                    "description": "the sender, checked when given",
                                }
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json_response(
                    "the gift taken back",
                    {
                        "type": "object",
                        "properties": {
                            "gift_id": {"type": "integer"},
                            "points": {"type": "integer"},
                            "recipient": {"type": "string", "description": "E.164"},
                            "available": {
                                "type": "integer",
                                "description": "the sender's balance afterwards",
                            },
                        },
                    },
                ),
                "400": _json_response("malformed id, body or msisdn", _ERROR),
                "404": _json_response("no such gift (or not from msisdn)", _ERROR),
                "409": _json_response(
                    "no longer pending: `status` is accepted, declined, cancelled or expired "
                    "(or the Idempotency-Key was used for another request)",
                    {
                        "type": "object",
                        "properties": {
                            "error": _STR,
                            "code": _STR,
                            "status": {
                                "type": "string",
                                "enum": ["accepted", "declined", "cancelled", "expired"],
                            },
                        },
                    },
                ),
                **_AUTH_ERRORS,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: the process serves HTTP.",
            "tags": ["operations"],
            "responses": {"200": _json_response("alive")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: a key written to and read from Redis, PostgreSQL answers, "
            "the menu is loaded.",
            "tags": ["operations"],
            "responses": {
                "200": _json_response("ready", _CHECKS),
                "503": _json_response("a dependency is not ready", _CHECKS),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics in the text exposition format.",
            "tags": ["operations"],
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {"schema": {}}}}
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "tags": ["operations"],
            "responses": {"200": _json_response("OpenAPI 3.1 document")},
        }
    },
    api.OUTBOX_PATH: {
        "get": {
            "summary": "Notifications of the outbox (SMS to subscribers), oldest first.",
            "description": "`status=failed` lists messages parked after repeated failures, "
            "with the reason in `last_error`.",
            "tags": ["operators"],
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(api.OUTBOX_STATUSES)},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": api.MAX_OUTBOX_LIMIT,
                        "default": api.DEFAULT_OUTBOX_LIMIT,
                    },
                },
            ],
            "responses": {
                "200": {
                    "description": "messages",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"items": {"type": "array", "items": _OUTBOX_ITEM}},
                            }
                        }
                    },
                },
                "400": {"description": "unknown status or bad limit"},
                "503": {"description": "the ledger database is unreachable"},
                **_AUTH_ERRORS,
            },
        }
    },
    # The web account and the operators' console (HTML pages and form posts).
    **WEB_PATHS,
}


def _gateway_paths() -> dict[str, dict[str, Any]]:
    """Every dialect's routes, as each dialect describes them."""
    paths: dict[str, dict[str, Any]] = {}
    for dialect in DIALECTS:
        for route in dialect.routes:
            paths.setdefault(route.path, {})[route.method.lower()] = dict(route.openapi)
    return paths


def openapi_document(_app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of the service."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bonus-points help line service",
            "version": "0.1.0",
            "description": "USSD, IVR and SMS gateways, and the operator/admin API.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "gatewayToken": {"type": "apiKey", "in": "header", "name": "X-Gateway-Token"},
                "gatewayBasic": {"type": "http", "scheme": "basic"},
            }
        },
        "paths": {**PATHS, **_gateway_paths()},
    }


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of every endpoint."""
    return web.json_response(openapi_document(request.app))


def add_routes(app: web.Application) -> None:
    """Register ``GET /openapi.json``."""
    app.router.add_get("/openapi.json", openapi, name="openapi")
