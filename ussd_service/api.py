"""The operator and admin API under ``/v1`` (bearer token)."""

from __future__ import annotations

from aiohttp import web

from ussd_service import handoffs
from ussd_service.auth import check_api
from ussd_service.keys import PG_POOL

MAX_OPERATOR_NAME = 64


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _handoff_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


async def list_handoffs(request: web.Request) -> web.Response:
    """Handoffs, oldest first; ``?status=waiting|claimed|closed``."""
    check_api(request)
    status = request.query.get("status")
    if status is not None and status not in handoffs.STATUSES:
        return _json_error(400, f"status must be one of {', '.join(handoffs.STATUSES)}")
    items = await handoffs.list_handoffs(request.app[PG_POOL], status)
    return web.json_response({"items": items})


async def claim_handoff(request: web.Request) -> web.Response:
    """An operator takes a waiting handoff (409 when someone else already did)."""
    check_api(request)
    handoff_id = _handoff_id(request)
    if handoff_id is None:
        return _json_error(404, "no such handoff")
    operator = request.headers.get("X-Operator", "operator")[:MAX_OPERATOR_NAME]
    pool = request.app[PG_POOL]
    claimed = await handoffs.claim_handoff(pool, handoff_id, operator)
    if claimed is not None:
        return web.json_response(claimed)
    if await handoffs.get_handoff(pool, handoff_id) is None:
        return _json_error(404, "no such handoff")
    return _json_error(409, "the handoff is not waiting")


async def close_handoff(request: web.Request) -> web.Response:
    """Finish a handoff (409 when it is already closed)."""
    check_api(request)
    handoff_id = _handoff_id(request)
    if handoff_id is None:
        return _json_error(404, "no such handoff")
    pool = request.app[PG_POOL]
    closed = await handoffs.close_handoff(pool, handoff_id)
    if closed is not None:
        return web.json_response(closed)
    if await handoffs.get_handoff(pool, handoff_id) is None:
        return _json_error(404, "no such handoff")
    return _json_error(409, "the handoff is already closed")


def add_routes(app: web.Application) -> None:
    """Register the /v1 endpoints."""
    app.router.add_get("/v1/handoffs", list_handoffs, name="handoffs")
    app.router.add_post("/v1/handoffs/{id}/claim", claim_handoff, name="handoff_claim")
    app.router.add_post("/v1/handoffs/{id}/close", close_handoff, name="handoff_close")
