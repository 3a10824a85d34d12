"""The operator and admin API under ``/v1`` (bearer token)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

import ledger
from ussd_service import handoffs
from ussd_service.auth import check_api
from ussd_service.deliveries import delivery_records
from ussd_service.hop import DEFAULT_REGION
from ussd_service.keys import PG_POOL, REDIS
from ussd_service.operations import UNAVAILABLE_ERRORS, plain

log = structlog.get_logger(__name__)

MAX_OPERATOR_NAME = 64
MAX_HISTORY = 100
DEFAULT_HISTORY = 20
MAX_JSON_BODY = 4096
OUTBOX_PATH = "/v1/outbox"
OUTBOX_STATUSES = ("pending", "sent", "failed")
DEFAULT_OUTBOX_LIMIT = 100
MAX_OUTBOX_LIMIT = 500

# How a ledger rejection reads over HTTP: the request was fine but the state
# of the subscriber or redemption does not allow it.
_CONFLICT_CODES = frozenset(
    {
        ledger.Code.NOT_ENROLLED,
        ledger.Code.BLOCKED,
        ledger.Code.IDEMPOTENCY_CONFLICT,
        ledger.Code.REDEMPTION_NOT_RESERVED,
    }
)


class AccrualRequest(BaseModel):
    """Body of ``POST /v1/accruals``."""

    model_config = ConfigDict(extra="forbid")

    msisdn: str = Field(max_length=32)
    points: int = Field(gt=0, le=10_000_000)
    reason: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=128)
    expires_at: AwareDatetime | None = None


class SettlementRequest(BaseModel):
    """Optional body of a provisioning callback."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=200)


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _msisdn(request: web.Request) -> str:
    number = ledger.try_normalize_msisdn(request.match_info["msisdn"], DEFAULT_REGION)
    if number is None:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "msisdn is not a valid phone number"}),
            content_type="application/json",
        )
    return number


async def _body(request: web.Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    """The JSON body validated by ``model``; a 400 that says what is wrong otherwise."""
    raw = await request.read()
    if optional and not raw.strip():
        return model()
    if len(raw) > MAX_JSON_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=len(raw))
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{where}: {first['msg']}"}),
            content_type="application/json",
        ) from None


def _outcome_response(outcome: ledger.Outcome[Any], *, created: bool = False) -> web.Response:
    if outcome.ok:
        return web.json_response(plain(outcome.value), status=201 if created else 200)
    status = 409 if outcome.code in _CONFLICT_CODES else 422
    if outcome.code is ledger.Code.UNKNOWN_REDEMPTION:
        status = 404
    return _json_error(status, outcome.code.value, details=plain(outcome.details))


async def post_accrual(request: web.Request) -> web.Response:
    """Credit points to a member (billing, operators, demos)."""
    check_api(request)
    body: AccrualRequest = await _body(request, AccrualRequest)
    number = ledger.try_normalize_msisdn(body.msisdn, DEFAULT_REGION)
    if number is None:
        return _json_error(400, "msisdn is not a valid phone number")
    try:
        outcome = await ledger.accrue(
            request.app[PG_POOL],
            number,
            body.points,
            key=f"api:{body.idempotency_key}",
            reason=body.reason,
            expires_at=body.expires_at,
        )
    except ValueError as exc:
        return _json_error(400, str(exc))
    return _outcome_response(outcome, created=True)


async def get_subscriber(request: web.Request) -> web.Response:
    """A subscriber's status, language, balance and soonest expiry."""
    check_api(request)
    summary = await ledger.subscriber_summary(request.app[PG_POOL], _msisdn(request))
    if summary is None:
        return _json_error(404, "no such subscriber")
    balance = summary.balance
    return web.json_response(
        {
            "msisdn": summary.msisdn,
            "status": summary.status,
            "language": summary.language,
            "enrolled_at": plain(summary.enrolled_at),
            "balance": {
                "available": balance.available,
                "pending_in": balance.pending_in,
                "pending_out": balance.pending_out,
            },
            "expiring": {
                "points": balance.expiring_points,
                "date": plain(balance.expiring_date),
            },
        }
    )


async def post_enrollment(request: web.Request) -> web.Response:
    """Join the programme (idempotent: a member stays a member)."""
    check_api(request)
    number = _msisdn(request)
    key = request.headers.get("Idempotency-Key", "")[:128] or f"enroll:{number}"
    outcome = await ledger.enroll(request.app[PG_POOL], number, key=f"api:{key}")
    if outcome.code is ledger.Code.ALREADY_ENROLLED:
        return _json_error(409, outcome.code.value)
    return _outcome_response(outcome)


async def get_history(request: web.Request) -> web.Response:
    """Latest movements on a member's account, newest first (``?limit=``)."""
    check_api(request)
    number = _msisdn(request)
    raw_limit = request.query.get("limit", str(DEFAULT_HISTORY))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_HISTORY:
        return _json_error(400, f"limit must be a whole number from 1 to {MAX_HISTORY}")
    outcome = await ledger.history(request.app[PG_POOL], number, int(raw_limit))
    if (
        outcome.code is ledger.Code.NOT_ENROLLED
        and await ledger.get_subscriber(request.app[PG_POOL], number) is None
    ):
        return _json_error(404, "no such subscriber")
    return _outcome_response(outcome)


async def _settle(request: web.Request, *, fulfilled: bool) -> web.Response:
    check_api(request)
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        return _json_error(404, "no such redemption")
    body: SettlementRequest = await _body(request, SettlementRequest, optional=True)
    pool, redemption_id = request.app[PG_POOL], int(raw)
    # One key per redemption and outcome: a provisioning system retrying its
    # callback gets the first answer again.
    if fulfilled:
        outcome = await ledger.fulfil_redemption(
            pool, redemption_id, key=f"provisioning:{redemption_id}:fulfilled"
        )
    else:
        outcome = await ledger.fail_redemption(
            pool, redemption_id, key=f"provisioning:{redemption_id}:failed", reason=body.reason
        )
    return _outcome_response(outcome)


async def redemption_fulfilled(request: web.Request) -> web.Response:
    """Provisioning delivered the reward: the reserved points are spent."""
    return await _settle(request, fulfilled=True)


async def redemption_failed(request: web.Request) -> web.Response:
    """Provisioning could not deliver: the reserved points go back."""
    return await _settle(request, fulfilled=False)


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def outbox_item(
    message: ledger.OutboxMessage, delivery: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One message as the outbox endpoint shows it."""
    return {
        "id": message.id,
        "event": message.event,
        "msisdn": message.msisdn,
        "payload": message.payload,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": _iso(message.next_attempt_at),
        "last_error": message.last_error,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "delivery": dict(delivery) if delivery is not None else None,
    }


async def list_outbox(request: web.Request) -> web.Response:
    """Outbox messages, oldest first; ``?status=pending|sent|failed&limit=N``."""
    check_api(request)
    status = request.query.get("status")
    if status is not None and status not in OUTBOX_STATUSES:
        return _json_error(400, f"status must be one of {', '.join(OUTBOX_STATUSES)}")
    raw_limit = request.query.get("limit", str(DEFAULT_OUTBOX_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_OUTBOX_LIMIT:
        return _json_error(400, f"limit must be a whole number from 1 to {MAX_OUTBOX_LIMIT}")
    try:
        messages = await ledger.list_outbox(
            request.app[PG_POOL],
            status,  # type: ignore[arg-type]  # checked against OUTBOX_STATUSES above
            limit=int(raw_limit),
        )
    except UNAVAILABLE_ERRORS as exc:
        log.warning("outbox_unavailable", error=type(exc).__name__)
        return _json_error(503, "the ledger database is unreachable")
    try:
        records = await delivery_records(request.app[REDIS], [m.id for m in messages])
    except (RedisError, OSError) as exc:
        log.warning("delivery_record_unavailable", error=type(exc).__name__)
        records = {}
    return web.json_response({"items": [outbox_item(m, records.get(m.id)) for m in messages]})


def add_routes(app: web.Application) -> None:
    """Register the /v1 endpoints."""
    app.router.add_post("/v1/accruals", post_accrual, name="accruals")
    app.router.add_get("/v1/subscribers/{msisdn}", get_subscriber, name="subscriber")
    app.router.add_post("/v1/subscribers/{msisdn}/enrollment", post_enrollment, name="enrollment")
    app.router.add_get("/v1/subscribers/{msisdn}/history", get_history, name="history")
    app.router.add_post(
        "/v1/redemptions/{id}/fulfilled", redemption_fulfilled, name="redemption_fulfilled"
    )
    app.router.add_post("/v1/redemptions/{id}/failed", redemption_failed, name="redemption_failed")
    app.router.add_get("/v1/handoffs", list_handoffs, name="handoffs")
    app.router.add_post("/v1/handoffs/{id}/claim", claim_handoff, name="handoff_claim")
    app.router.add_post("/v1/handoffs/{id}/close", close_handoff, name="handoff_close")
    app.router.add_get(OUTBOX_PATH, list_outbox, name="outbox")
