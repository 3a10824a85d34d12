"""The operator and admin API under ``/v1`` (bearer token).

Bad input is a 4xx whose JSON ``error`` says what is wrong in one line; a
backend that is down or does not answer within ``DEADLINE_S`` is a 503 with
``Retry-After``, never a 500 or a hung request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

import structlog
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import ledger
from ussd_service import earning_rules, events, handoffs
from ussd_service.auth import check_api
from ussd_service.channels.forms import check_json_depth, unstorable
from ussd_service.deadlines import within
from ussd_service.deliveries import delivery_records
from ussd_service.hop import DEFAULT_REGION, MalformedRequestError
from ussd_service.keys import PG_POOL, REDIS, SETTINGS
from ussd_service.operations import UNAVAILABLE_ERRORS, plain

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]

MAX_OPERATOR_NAME = 64
MAX_HISTORY = 100
DEFAULT_HISTORY = 20
MAX_JSON_BODY = 4096
OUTBOX_PATH = "/v1/outbox"
OUTBOX_STATUSES = ("pending", "sent", "failed")
DEFAULT_OUTBOX_LIMIT = 100
MAX_OUTBOX_LIMIT = 500
MAX_IDEMPOTENCY_KEY = 128
# Longest a /v1 request may wait on PostgreSQL or Redis before it is a 503
# (a frozen server never answers; the operator's tool should not hang).
DEADLINE_S = 5.0
# What a 503 suggests to the client: outages seen so far last seconds.
RETRY_AFTER_S = 5
# A backend that cannot answer now: the ledger's set, and Redis's.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    *UNAVAILABLE_ERRORS,
    RedisConnectionError,
    RedisTimeoutError,
)
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXPIRY_FORMS = "a date (YYYY-MM-DD) or a date-time with a time zone"

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


def _storable(value: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _expiry(value: Any) -> Any:
    """A plain date (``2027-03-31``) or a date-time with its offset; nothing else."""
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be {_EXPIRY_FORMS}")  # noqa: TRY004 - pydantic reports ValueErrors
    try:
        if _PLAIN_DATE.fullmatch(value):
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not {_EXPIRY_FORMS}") from None
    if moment.utcoffset() is None:
        raise ValueError("a date-time needs a time zone (Z or +03:00)")
    return moment


Text = Annotated[str, AfterValidator(_storable)]
Expiry = Annotated[datetime | date | None, BeforeValidator(_expiry)]


class AccrualRequest(BaseModel):
    """Body of ``POST /v1/accruals``."""

    model_config = ConfigDict(extra="forbid")

    msisdn: Text = Field(max_length=32)
    points: int = Field(gt=0, le=10_000_000)
    reason: Text = Field(min_length=1, max_length=200)
    idempotency_key: Text = Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    # A plain date is the end of that day in the programme's time zone.
    expires_at: Expiry = None


class SettlementRequest(BaseModel):
    """Optional body of a provisioning callback."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=200)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


StaffId = Annotated[
    str, Field(min_length=1, max_length=ledger.MAX_STAFF_ID), AfterValidator(_storable)
]


class EnrollmentRequest(BaseModel):
    """Optional body of ``POST /v1/subscribers/{msisdn}/enrollment``: how they joined."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel: Literal["self", "shop", "help_desk", "web"] = "self"
    # Who enrolled them; required for shop and help_desk.
    staff_id: StaffId | None = None
    document_checked: bool | None = None

    @model_validator(mode="after")
    def _staff_named(self) -> EnrollmentRequest:
        if self.channel in ledger.STAFF_CHANNELS and self.staff_id is None:
            raise ValueError(f"staff_id is required when channel is {self.channel}")
        return self


class BlockRequest(BaseModel):
    """Body of ``POST /v1/subscribers/{msisdn}/block`` and ``.../unblock``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Annotated[Text, AfterValidator(_not_blank)] = Field(
        min_length=1, max_length=ledger.MAX_REASON
    )
    staff_id: StaffId | None = None


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def unavailable(exc: BaseException, *, json_body: bool = True) -> web.Response:
    """The 503 for a backend outage, logged as one warning line (no traceback)."""
    detail = " ".join(str(exc).split())[:200]  # one line, whatever the driver says
    log.warning("backend_unavailable", error=type(exc).__name__, detail=detail)
    reason = "a backend (PostgreSQL or Redis) is unreachable; retry later"
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if json_body:
        return web.json_response({"error": reason}, status=503, headers=headers)
    return web.Response(status=503, text=reason + "\n", content_type="text/plain", headers=headers)


def _msisdn(request: web.Request) -> str:
    number = ledger.try_normalize_msisdn(request.match_info["msisdn"], DEFAULT_REGION)
    if number is None:
        raise _bad_request("msisdn is not a valid phone number")
    return number


def _path_id(request: web.Request) -> int | None:
    """The ``{id}`` of the path as a database id, or None (ASCII digits, fits a bigint)."""
    raw = request.match_info["id"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def _limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= maximum):
        raise _bad_request(f"limit must be a whole number from 1 to {maximum}")
    return int(raw)


def _header_text(request: web.Request, name: str, max_len: int) -> str | None:
    """A text header that can be stored, or a 400 naming it."""
    value = request.headers.get(name)
    if value is None:
        return None
    problem = unstorable(value) or (f"is longer than {max_len}" if len(value) > max_len else None)
    if problem is not None:
        raise _bad_request(f"header {name} {problem}")
    return value


async def _body(request: web.Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    """The JSON body validated by ``model``; a 400 that says what is wrong otherwise."""
    raw = await request.read()
    if optional and not raw.strip():
        return model()
    if len(raw) > MAX_JSON_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=len(raw))
    try:
        text = raw.decode("utf-8")
        check_json_depth(text)
        return model.model_validate_json(text)
    except UnicodeDecodeError:
        raise _bad_request("the body is not valid UTF-8") from None
    except MalformedRequestError as exc:
        raise _bad_request(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = first["msg"].removeprefix("Value error, ")
        raise _bad_request(f"{where}: {message}") from None


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
            settings=request.app[SETTINGS].ledger_settings(),
        )
    except ValueError as exc:
        return _json_error(400, str(exc))
    return _outcome_response(outcome, created=True)


async def post_event(request: web.Request) -> web.Response:
    """Apply the earning rules to an event (top-up, tenure, joined) and credit what it earns."""
    check_api(request)
    rules = request.app[earning_rules.EARNING_RULES]
    if rules is None:
        return _json_error(503, "no earning rules are loaded (USSD_EARNING_RULES_FILE)")
    body: events.EventRequest = await _body(request, events.EventRequest)
    try:
        outcome = await events.apply_event(
            request.app[PG_POOL], rules, body, settings=request.app[SETTINGS].ledger_settings()
        )
    except ValueError as exc:
        return _json_error(400, str(exc))
    if not outcome.ok:
        return _outcome_response(outcome)
    return web.json_response(events.answer(outcome), status=201)


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
            **await _membership(request, summary.msisdn),
        }
    )


async def _membership(request: web.Request, number: str) -> dict[str, Any]:
    """How they joined and, while blocked, the block (who, why, when)."""
    pool = request.app[PG_POOL]
    record = await ledger.enrollment_record(pool, number)
    enrollment = None
    if record is not None and record.enrolled_at is not None:
        enrollment = {
            "channel": record.channel,
            "staff_id": record.staff_id,
            "document_checked": record.document_checked,
            "enrolled_at": plain(record.enrolled_at),
        }
    block = None
    if record is not None and record.status == "blocked":
        latest = next(iter(await ledger.block_history(pool, number, limit=1)), None)
        block = None if latest is None else plain(latest)
    return {"enrollment": enrollment, "block": block}


async def post_enrollment(request: web.Request) -> web.Response:
    """Join the programme; a member already is answered 200 with ``already: true``."""
    check_api(request)
    number = _msisdn(request)
    body: EnrollmentRequest = await _body(request, EnrollmentRequest, optional=True)
    asked = body.model_dump()
    given = _header_text(request, "Idempotency-Key", MAX_IDEMPOTENCY_KEY)
    # Without a key, the same request is the same operation (its retry changes nothing).
    digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]
    key = given or f"enroll:{number}:{digest}"
    outcome = await ledger.enroll(request.app[PG_POOL], number, key=f"api:{key}", **asked)
    if outcome.code is ledger.Code.ALREADY_ENROLLED:
        return web.json_response({"msisdn": number, **outcome.details, "already": True})
    if not outcome.ok:
        return _outcome_response(outcome)
    return web.json_response({**plain(outcome.value), **asked, "already": False})


async def _status_change(request: web.Request, *, blocking: bool) -> web.Response:
    check_api(request)
    number = _msisdn(request)
    body: BlockRequest = await _body(request, BlockRequest)
    given = _header_text(request, "Idempotency-Key", MAX_IDEMPOTENCY_KEY)
    named = _header_text(request, "X-Operator", 4 * MAX_OPERATOR_NAME)
    pool = request.app[PG_POOL]
    if not blocking and await ledger.get_subscriber(pool, number) is None:
        return _json_error(404, "no such subscriber")
    change = ledger.block if blocking else ledger.unblock
    outcome = await change(
        pool,
        number,
        # Without a key every call is its own (audited) request: a repeat is harmless.
        key=f"api:{given or uuid.uuid4().hex}",
        reason=body.reason,
        actor=f"api:{named[:MAX_OPERATOR_NAME]}" if named else "api",
        staff_id=body.staff_id,
    )
    return _outcome_response(outcome)


async def post_block(request: web.Request) -> web.Response:
    """Bar a number (audited); gifts pending to it go back to their senders."""
    return await _status_change(request, blocking=True)


async def post_unblock(request: web.Request) -> web.Response:
    """Lift a block (audited): a member again, or not enrolled if they never joined."""
    return await _status_change(request, blocking=False)


async def get_history(request: web.Request) -> web.Response:
    """Latest movements on a member's account, newest first (``?limit=``)."""
    check_api(request)
    number = _msisdn(request)
    limit = _limit(request, DEFAULT_HISTORY, MAX_HISTORY)
    outcome = await ledger.history(request.app[PG_POOL], number, limit)
    if (
        outcome.code is ledger.Code.NOT_ENROLLED
        and await ledger.get_subscriber(request.app[PG_POOL], number) is None
    ):
        return _json_error(404, "no such subscriber")
    return _outcome_response(outcome)


async def _settle(request: web.Request, *, fulfilled: bool) -> web.Response:
    check_api(request)
    redemption_id = _path_id(request)
    if redemption_id is None:
        return _json_error(404, "no such redemption")
    body: SettlementRequest = await _body(request, SettlementRequest, optional=True)
    pool = request.app[PG_POOL]
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
    handoff_id = _path_id(request)
    if handoff_id is None:
        return _json_error(404, "no such handoff")
    named = _header_text(request, "X-Operator", 4 * MAX_OPERATOR_NAME)
    operator = (named or "operator")[:MAX_OPERATOR_NAME]
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
    handoff_id = _path_id(request)
    if handoff_id is None:
        return _json_error(404, "no such handoff")
    pool = request.app[PG_POOL]
    closed = await handoffs.close_handoff(pool, handoff_id)
    if closed is not None:
        return web.json_response(closed)
    if await handoffs.get_handoff(pool, handoff_id) is None:
        return _json_error(404, "no such handoff")
    return _json_error(409, "the handoff is already closed")


class GiftCancelRequest(BaseModel):
    """Optional body of ``POST /v1/gifts/{id}/cancel``: the sender, checked when given."""

    model_config = ConfigDict(extra="forbid")

    msisdn: Text | None = Field(default=None, max_length=32)


async def cancel_gift(request: web.Request) -> web.Response:
    """The sender takes back a gift still pending (an operator acting for them).

    404 for a gift never sent (or not by ``msisdn``); 409 once accepted,
    declined, cancelled or expired, saying which. Retries with the same
    ``Idempotency-Key`` (default: one per gift) get the first answer.
    """
    check_api(request)
    gift_id = _path_id(request)
    if gift_id is None:
        return _json_error(400, "id must be a gift number (digits only)")
    body: GiftCancelRequest = await _body(request, GiftCancelRequest, optional=True)
    sender = None
    if body.msisdn is not None:
        sender = ledger.try_normalize_msisdn(body.msisdn, DEFAULT_REGION)
        if sender is None:
            return _json_error(400, "msisdn is not a valid phone number")
    key = _header_text(request, "Idempotency-Key", MAX_IDEMPOTENCY_KEY) or f"cancel-gift:{gift_id}"
    outcome = await ledger.cancel_gift(
        request.app[PG_POOL],
        sender,
        gift_id,
        key=f"api:{key}",
        settings=request.app[SETTINGS].ledger_settings(),
    )
    if outcome.code is ledger.Code.NO_PENDING_GIFT:
        return _json_error(404, "no such gift" + ("" if sender is None else " from this msisdn"))
    if outcome.code in (ledger.Code.GIFT_NOT_PENDING, ledger.Code.GIFT_EXPIRED):
        state = str(outcome.details.get("status", "resolved"))
        message = f"the gift is no longer pending: {state}"
        answer = {"error": message, "code": outcome.code.value, "status": state}
        return web.json_response(answer, status=409)
    return _outcome_response(outcome)


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
        "next_attempt_at": plain(message.next_attempt_at),
        "last_error": message.last_error,
        "created_at": plain(message.created_at),
        "sent_at": plain(message.sent_at),
        "delivery": dict(delivery) if delivery is not None else None,
        "dlr": message.dlr.as_dict() if message.dlr is not None else None,
    }


async def list_outbox(request: web.Request) -> web.Response:
    """Outbox messages, oldest first; ``?status=pending|sent|failed&limit=N``."""
    check_api(request)
    status = request.query.get("status")
    if status is not None and status not in OUTBOX_STATUSES:
        return _json_error(400, f"status must be one of {', '.join(OUTBOX_STATUSES)}")
    limit = _limit(request, DEFAULT_OUTBOX_LIMIT, MAX_OUTBOX_LIMIT)
    messages = await ledger.list_outbox(
        request.app[PG_POOL],
        status,  # type: ignore[arg-type]  # checked against OUTBOX_STATUSES above
        limit=limit,
    )
    try:
        records = await delivery_records(request.app[REDIS], [m.id for m in messages])
    except (RedisError, RedisClusterException, OSError) as exc:
        log.warning("delivery_record_unavailable", error=type(exc).__name__)
        records = {}
    return web.json_response({"items": [outbox_item(m, records.get(m.id)) for m in messages]})


def guarded(handler: Handler) -> Handler:
    """``handler`` with a deadline; a backend outage or a missed deadline is a 503."""

    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            return await within(handler(request), DEADLINE_S)
        except BACKEND_ERRORS as exc:
            return unavailable(exc)

    return functools.wraps(handler)(guard)


_ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("POST", "/v1/accruals", post_accrual, "accruals"),
    ("POST", "/v1/events", post_event, "events"),
    ("GET", "/v1/subscribers/{msisdn}", get_subscriber, "subscriber"),
    ("POST", "/v1/subscribers/{msisdn}/enrollment", post_enrollment, "enrollment"),
    ("POST", "/v1/subscribers/{msisdn}/block", post_block, "block"),
    ("POST", "/v1/subscribers/{msisdn}/unblock", post_unblock, "unblock"),
    ("GET", "/v1/subscribers/{msisdn}/history", get_history, "history"),
    ("POST", "/v1/redemptions/{id}/fulfilled", redemption_fulfilled, "redemption_fulfilled"),
    ("POST", "/v1/redemptions/{id}/failed", redemption_failed, "redemption_failed"),
    ("GET", "/v1/handoffs", list_handoffs, "handoffs"),
    ("POST", "/v1/handoffs/{id}/claim", claim_handoff, "handoff_claim"),
    ("POST", "/v1/handoffs/{id}/close", close_handoff, "handoff_close"),
    ("POST", "/v1/gifts/{id}/cancel", cancel_gift, "gift_cancel"),
    ("GET", OUTBOX_PATH, list_outbox, "outbox"),
)


def add_routes(app: web.Application) -> None:
    """Register the /v1 endpoints, each behind ``guarded``, and load the earning rules.

    A rules file with errors raises ``RulesError``: the service does not start.
    """
    settings = app[SETTINGS]
    app[earning_rules.EARNING_RULES] = earning_rules.load_configured(
        settings.earning_rules_file, settings.ledger_settings()
    )
    for method, path, handler, name in _ROUTES:
        add = app.router.add_get if method == "GET" else app.router.add_post
        add(path, guarded(handler), name=name)
