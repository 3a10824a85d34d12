"""``/operator``: the help-desk operators' console.

Operators sign in with the accounts ``ussd-service operator add NAME`` makes
(argon2id hashes). The queue of waiting handoffs refreshes itself; an operator
claims one, sees the caller's breadcrumb and subscriber card, enrols the
caller if asked (the ledger key names the operator and the channel
``help_desk``), and closes it. Every action lands in ``operator_audit``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiohttp_session import Session

import ledger
from ussd_service import handoffs, redis_keys
from ussd_service.keys import PG_POOL, REDIS, SETTINGS
from ussd_service.web import codes, limits, passwords
from ussd_service.web import operators as accounts
from ussd_service.web.pages import flash, language_of, render, texts_for
from ussd_service.web.security import client_address, field, form_nonce, form_of
from ussd_service.web.sessions import end_session, fresh_session, get_session
from ussd_service.web.texts import Texts

log = structlog.get_logger(__name__)

HOME = "/operator"
LOGIN = "/operator/login"
routes = web.RouteTableDef()
_NAME = re.compile(limits.OPERATOR_NAME_PATTERN)


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.config_dict[PG_POOL]


def _settings(request: web.Request) -> ledger.LedgerSettings:
    return request.config_dict[SETTINGS].ledger_settings()


def _texts(request: web.Request, session: Session) -> Texts:
    return texts_for(request, language_of(request, session))


async def _operator(request: web.Request) -> tuple[Session, accounts.Operator]:
    """The signed-in operator, or a redirect to the sign-in page.

    The account is read on every request: a deactivated operator, or one whose
    password was reset since signing in, is signed out at once.
    """
    session = await get_session(request)
    data = session.get("operator")
    if isinstance(data, dict) and isinstance(data.get("id"), int):
        operator = await accounts.get_operator(_pool(request), data["id"])
        if (
            operator is not None
            and operator.active
            and operator.password_set_at.isoformat() == data.get("password_set_at")
        ):
            return session, operator
        session.invalidate()
    raise web.HTTPSeeOther(LOGIN)


async def _audit(
    request: web.Request, operator: accounts.Operator, action: str, **fields: Any
) -> None:
    await accounts.audit(
        _pool(request),
        action,
        operator_id=operator.id,
        operator_name=operator.name,
        client=client_address(request),
        **fields,
    )


# -- sign-in ---------------------------------------------------------------------------


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    if isinstance(session.get("operator"), dict):
        raise web.HTTPSeeOther(HOME)
    return await render(request, "operator/login.html", name="", error=None)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    t = _texts(request, session)
    name = field(request, "name").lower()
    password = form_of(request).get("password", "")
    redis, client = request.config_dict[REDIS], client_address(request)
    name_key = redis_keys.operator_signin_key(name[:64])
    client_key = redis_keys.operator_client_key(client)
    limited = await codes.peek(redis, client_key, limits.OPERATOR_FAILURES_PER_CLIENT)
    limited = limited or await codes.peek(redis, name_key, limits.OPERATOR_FAILURES_PER_NAME)
    if limited is not None:
        minutes = max(1, -(-limited.retry_after_s // 60))
        return await render(
            request,
            "operator/login.html",
            status=429,
            name=name,
            error=t("operator.login.locked", minutes=minutes),
        )
    operator = None
    if _NAME.match(name) and 0 < len(password) <= limits.PASSWORD_MAX_LENGTH:
        operator = await accounts.find_operator(_pool(request), name)
    stored = operator.password_hash if operator is not None and operator.active else None
    if not await passwords.verify_password(stored, password[: limits.PASSWORD_MAX_LENGTH]):
        window = limits.OPERATOR_FAILURES_WINDOW_S
        await codes.count(redis, name_key, window, limits.OPERATOR_FAILURES_PER_NAME)
        await codes.count(redis, client_key, window, limits.OPERATOR_FAILURES_PER_CLIENT)
        await accounts.audit(
            _pool(request),
            "sign_in_failed",
            operator_id=operator.id if operator is not None else None,
            operator_name=name[:64],
            client=client,
        )
        log.info("operator_sign_in_failed", client=client)
        return await render(
            request, "operator/login.html", status=422, name=name, error=t("operator.login.wrong")
        )
    assert operator is not None
    if passwords.needs_rehash(operator.password_hash):
        await accounts.update_hash(_pool(request), operator.id, passwords.hash_password(password))
    await redis.delete(name_key)
    language = language_of(request, session)
    new = await fresh_session(request)
    new["operator"] = {
        "id": operator.id,
        "name": operator.name,
        "password_set_at": operator.password_set_at.isoformat(),
    }
    new["lang"] = language
    await _audit(request, operator, "sign_in")
    log.info("operator_signed_in", operator=operator.name)
    raise web.HTTPSeeOther(HOME)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    data = session.get("operator")
    if isinstance(data, dict) and isinstance(data.get("id"), int):
        operator = await accounts.get_operator(_pool(request), data["id"])
        if operator is not None:
            await _audit(request, operator, "sign_out")
    await end_session(request)
    raise web.HTTPSeeOther(LOGIN)


# -- the queue -------------------------------------------------------------------------


async def _queue(request: web.Request, operator: accounts.Operator) -> dict[str, Any]:
    pool = _pool(request)
    waiting = await handoffs.list_handoffs(pool, "waiting")
    claimed = [
        h for h in await handoffs.list_handoffs(pool, "claimed") if h["claimed_by"] == operator.name
    ]
    now = datetime.now(UTC)
    for item in [*waiting, *claimed]:
        item["waited"] = now - datetime.fromisoformat(item["created_at"])
    return {"waiting": waiting, "claimed": claimed, "updated": now}


@routes.get("")
async def queue_page(request: web.Request) -> web.StreamResponse:
    _session, operator = await _operator(request)
    return await render(
        request,
        "operator/queue.html",
        operator=operator,
        refresh_s=limits.QUEUE_REFRESH_S,
        **await _queue(request, operator),
    )


@routes.get("/queue")
async def queue_fragment(request: web.Request) -> web.StreamResponse:
    """The queue's table alone: what the page's script fetches to refresh itself."""
    _session, operator = await _operator(request)
    return await render(
        request, "operator/queue_table.html", operator=operator, **await _queue(request, operator)
    )


def _handoff_id(request: web.Request) -> int:
    raw = request.match_info["handoff_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="404: no such handoff\n", content_type="text/plain")
    return int(raw)


@routes.post("/handoffs/{handoff_id}/claim")
async def claim(request: web.Request) -> web.StreamResponse:
    session, operator = await _operator(request)
    t = _texts(request, session)
    handoff_id = _handoff_id(request)
    taken = await handoffs.claim_handoff(_pool(request), handoff_id, operator.name)
    if taken is None:
        current = await handoffs.get_handoff(_pool(request), handoff_id)
        if current is None:
            raise web.HTTPNotFound(text="404: no such handoff\n", content_type="text/plain")
        if current["claimed_by"] != operator.name:
            flash(session, t("operator.queue.taken"), "error")
            raise web.HTTPSeeOther(HOME)
    else:
        await _audit(request, operator, "claim", msisdn=taken["msisdn"], handoff_id=handoff_id)
    raise web.HTTPSeeOther(f"{HOME}/handoffs/{handoff_id}")


@routes.get("/handoffs/{handoff_id}")
async def handoff_page(request: web.Request) -> web.StreamResponse:
    _session, operator = await _operator(request)
    item = await handoffs.get_handoff(_pool(request), _handoff_id(request))
    if item is None:
        raise web.HTTPNotFound(text="404: no such handoff\n", content_type="text/plain")
    item["waited"] = datetime.now(UTC) - datetime.fromisoformat(item["created_at"])
    card = await _card(request, operator, item["msisdn"], handoff_id=item["id"])
    return await render(request, "operator/handoff.html", operator=operator, item=item, **card)


@routes.post("/handoffs/{handoff_id}/close")
async def close(request: web.Request) -> web.StreamResponse:
    session, operator = await _operator(request)
    t = _texts(request, session)
    handoff_id = _handoff_id(request)
    closed = await handoffs.close_handoff(_pool(request), handoff_id)
    if closed is not None:
        await _audit(request, operator, "close", msisdn=closed["msisdn"], handoff_id=handoff_id)
        flash(session, t("operator.handoff.closed"))
    raise web.HTTPSeeOther(HOME)


# -- subscribers -----------------------------------------------------------------------


async def _card(
    request: web.Request,
    operator: accounts.Operator,
    msisdn: str,
    *,
    handoff_id: int | None = None,
) -> dict[str, Any]:
    """What the subscriber card shows (the view is audited)."""
    pool, settings = _pool(request), _settings(request)
    summary = await ledger.subscriber_summary(pool, msisdn, settings=settings)
    card: dict[str, Any] = {"msisdn": msisdn, "summary": summary, "history": [], "received": []}
    if summary is not None and summary.status != "not_enrolled":
        history = await ledger.history(pool, msisdn, 20, settings=settings)
        card["history"] = history.value.items if history.value else []
    received = await ledger.pending_gifts(pool, msisdn, settings=settings)
    sent = await ledger.sent_gifts(pool, msisdn, settings=settings)
    card["received"] = received.value.items if received.value else []
    card["sent"] = sent.value.items if sent.value else []
    await _audit(request, operator, "view_subscriber", msisdn=msisdn, handoff_id=handoff_id)
    return card


@routes.get("/subscribers")
async def subscriber_page(request: web.Request) -> web.StreamResponse:
    session, operator = await _operator(request)
    t = _texts(request, session)
    raw = request.query.get("msisdn", "").strip()[: limits.MAX_FIELD_CHARS]
    context: dict[str, Any] = {"operator": operator, "query": raw, "error": None, "card": None}
    if raw:
        msisdn = ledger.try_normalize_msisdn(raw, _settings(request).default_region)
        if msisdn is None:
            context["error"] = t("login.bad_phone")
        else:
            context["card"] = await _card(request, operator, msisdn)
    return await render(request, "operator/subscriber.html", **context)


@routes.post("/subscribers/{msisdn}/enrol")
async def enrol(request: web.Request) -> web.StreamResponse:
    session, operator = await _operator(request)
    t = _texts(request, session)
    region = _settings(request).default_region
    msisdn = ledger.try_normalize_msisdn(request.match_info["msisdn"], region)
    nonce = form_nonce(form_of(request))
    back = field(request, "back")
    if not back.startswith(f"{HOME}/") or "//" in back or "\\" in back:
        back = f"{HOME}/subscribers?msisdn={msisdn or ''}"
    if msisdn is None or nonce is None:
        flash(session, t("errors.stale_form"), "error")
        raise web.HTTPSeeOther(back)
    language = field(request, "language")
    outcome = await ledger.enroll(
        _pool(request),
        msisdn,
        key=f"help_desk:operator-{operator.id}:enroll:{msisdn}:{nonce}",
        language=language or None,
        channel="help_desk",
        staff_id=f"operator:{operator.name}"[: ledger.MAX_STAFF_ID],
        settings=_settings(request),
    )
    if outcome.ok:
        await _audit(
            request, operator, "enrol", msisdn=msisdn, details={"replayed": outcome.replayed}
        )
        flash(session, t("operator.card.enrolled", msisdn=t.phone(msisdn)))
    else:
        name = f"codes.{outcome.code.value}"
        flash(session, t(name) if t.has(name) else t("codes.other"), "error")
    raise web.HTTPSeeOther(back)
