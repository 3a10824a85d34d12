"""The OpenAPI description of the service, kept by hand next to the routes.

A test compares it with the application's router, so an endpoint cannot be
added or removed without this document following.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

_JSON = "application/json"


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {_JSON: {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


_CHECKS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["status", "checks"],
}

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "summary": "Liveness: the process serves HTTP.",
            "tags": ["operations"],
            "responses": {"200": _json_response("alive")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: Redis and PostgreSQL answer and the menu is loaded.",
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
}


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
        "paths": PATHS,
    }
