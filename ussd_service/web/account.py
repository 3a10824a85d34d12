"""``/account``: the subscriber's personal account.

Sign-in is by phone number and a one-time code sent by SMS through the
ledger's outbox; every page after it calls the same ledger functions as the
menus, each change with the idempotency key ``web:<number>:<action>:<nonce>``
built from the form's nonce, so a form sent twice is one change. Changes are
POSTs answered with a redirect (the message rides in the session).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import structlog
from aiohttp import web
from aiohttp_session import Session

import ledger
from ussd_service.keys import PG_POOL, REDIS, SETTINGS
from ussd_service.web import codes, limits
from ussd_service.web.pages import flash, language_of, render, texts_for
from ussd_service.web.security import client_address, field, form_nonce, form_of
from ussd_service.web.sessions import end_session, fresh_session, get_session
from ussd_service.web.texts import LANGUAGES, Texts

log = structlog.get_logger(__name__)

HOME = "/account"
LOGIN = "/account/login"
CODE_PAGE = "/account/login/code"
routes = web.RouteTableDef()
_CODE = re.compile(r"^\d{6}$")
_POINTS = re.compile(r"^\d{1,9}$")
_REWARD = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


# -- helpers ---------------------------------------------------------------------------


def _ledger_settings(request: web.Request) -> ledger.LedgerSettings:
    return request.config_dict[SETTINGS].ledger_settings()


def _pool(request: web.Request) -> Any:
    return request.config_dict[PG_POOL]


async def _member(request: web.Request) -> tuple[Session, str]:
    """The signed-in number, or a redirect to the sign-in page."""
    session = await get_session(request)
    msisdn = session.get("msisdn")
    if not isinstance(msisdn, str):
        raise web.HTTPSeeOther(LOGIN)
    return session, msisdn


def _texts(request: web.Request, session: Session) -> Texts:
    return texts_for(request, language_of(request, session))


def _key(msisdn: str, action: str, nonce: str) -> str:
    return f"web:{msisdn}:{action}:{nonce}"


def _refusal(t: Texts, outcome: ledger.Outcome[Any]) -> str:
    """A ledger rejection in words."""
    name = f"codes.{outcome.code.value}"
    return t(name) if t.has(name) else t("codes.other")


def _parse_number(raw: str, region: str) -> str | None:
    return ledger.try_normalize_msisdn(raw, region) if raw else None


def _redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def _stale_form(session: Session, t: Texts, location: str) -> web.HTTPSeeOther:
    flash(session, t("errors.stale_form"), "error")
    return _redirect(location)


# -- sign-in ---------------------------------------------------------------------------


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    if isinstance(session.get("msisdn"), str):
        raise _redirect(HOME)
    signed_out = request.query.get("signed_out") == "1"
    return await render(request, "account/login.html", phone="", error=None, signed_out=signed_out)


@routes.post("/login")
async def login_send(request: web.Request) -> web.StreamResponse:
    """Send a code to the number typed: to any valid number, member or not, so the
    answer never tells which numbers are members."""
    session = await get_session(request)
    t = _texts(request, session)
    raw = field(request, "phone")
    msisdn = _parse_number(raw, _ledger_settings(request).default_region)
    if msisdn is None:
        return await render(
            request, "account/login.html", phone=raw, error=t("login.bad_phone"), signed_out=False
        )
    issued = await codes.issue(request.config_dict[REDIS], msisdn, client_address(request))
    if isinstance(issued, codes.Limited):
        log.info("web_login_code_limited", msisdn=msisdn, retry_after_s=issued.retry_after_s)
        minutes = max(1, -(-issued.retry_after_s // 60))
        return await render(
            request,
            "account/login.html",
            status=429,
            phone=raw,
            error=t("login.too_many_codes", minutes=minutes),
            signed_out=False,
        )
    await ledger.queue_notification(
        _pool(request),
        "login_code",
        msisdn,
        {"language": t.language, "code": issued, "minutes": limits.CODE_TTL_MINUTES},
    )
    log.info("web_login_code_sent", msisdn=msisdn)
    session["login"] = msisdn
    raise _redirect(CODE_PAGE)


@routes.get("/login/code")
async def code_page(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    if not isinstance(session.get("login"), str):
        raise _redirect(LOGIN)
    return await _code_page(request, session["login"], None)


async def _code_page(
    request: web.Request, msisdn: str, error: str | None, *, status: int = 200, dead: bool = False
) -> web.Response:
    return await render(
        request,
        "account/code.html",
        status=status,
        msisdn=msisdn,
        error=error,
        dead=dead,
        minutes=limits.CODE_TTL_MINUTES,
    )


@routes.post("/login/code")
async def code_check(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    msisdn = session.get("login")
    if not isinstance(msisdn, str):
        raise _redirect(LOGIN)
    t = _texts(request, session)
    typed = re.sub(r"[\s-]", "", field(request, "code"))
    if not _CODE.match(typed):
        return await _code_page(request, msisdn, t("code.format"), status=422)
    checked = await codes.check(request.config_dict[REDIS], msisdn, typed, client_address(request))
    if isinstance(checked, codes.Limited):
        minutes = max(1, -(-checked.retry_after_s // 60))
        return await _code_page(
            request, msisdn, t("code.too_many_client", minutes=minutes), status=429
        )
    if checked.result != "ok":
        log.info("web_login_code_refused", msisdn=msisdn, result=checked.result)
        errors = {
            "wrong": t.plural("code.wrong", checked.tries_left),
            "burned": t("code.burned"),
            "missing": t("code.missing"),
        }
        return await _code_page(
            request, msisdn, errors[checked.result], status=422, dead=checked.result != "wrong"
        )
    # The page keeps the language it was read in; the Language page also sets
    # the programme's (menus, SMS).
    new = await fresh_session(request)
    new["msisdn"] = msisdn
    new["lang"] = t.language
    log.info("web_signed_in", msisdn=msisdn)
    raise _redirect(HOME)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    await end_session(request)
    raise _redirect(LOGIN + "?signed_out=1")


# -- pages -----------------------------------------------------------------------------


@routes.get("")
async def home(request: web.Request) -> web.StreamResponse:
    _session, msisdn = await _member(request)
    pool, settings = _pool(request), _ledger_settings(request)
    subscriber = await ledger.get_subscriber(pool, msisdn, settings=settings)
    status = subscriber.status if subscriber is not None else "not_enrolled"
    context: dict[str, Any] = {"msisdn": msisdn, "member_status": status}
    if status != "not_enrolled":
        summary = await ledger.subscriber_summary(pool, msisdn, settings=settings)
        schedule = await ledger.expiry_schedule(pool, msisdn, settings=settings)
        received = await ledger.pending_gifts(pool, msisdn, settings=settings)
        context["balance"] = summary.balance if summary is not None else None
        context["expiries"] = schedule.value.items if schedule.value else []
        context["gifts_waiting"] = received.value.count if received.value else 0
    return await render(request, "account/home.html", **context)


@routes.get("/history")
async def history(request: web.Request) -> web.StreamResponse:
    _session, msisdn = await _member(request)
    outcome = await ledger.history(
        _pool(request), msisdn, limits.HISTORY_ROWS, settings=_ledger_settings(request)
    )
    items = outcome.value.items if outcome.value else []
    return await render(
        request, "account/history.html", msisdn=msisdn, items=items, member=outcome.ok
    )


@routes.get("/rewards")
async def rewards(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    language = language_of(request, session)
    settings = _ledger_settings(request)
    catalog = await ledger.list_catalog(_pool(request), language=language, settings=settings)
    groups: OrderedDict[str, list[ledger.CatalogItem]] = OrderedDict()
    for item in catalog.value.items if catalog.value else []:
        groups.setdefault(item.category, []).append(item)
    balance = await ledger.balance(_pool(request), msisdn, settings=settings)
    return await render(
        request,
        "account/rewards.html",
        msisdn=msisdn,
        groups=groups,
        available=balance.value.available if balance.value else None,
    )


async def _reward(request: web.Request, language: str) -> ledger.CatalogItem:
    code = request.match_info["code"]
    if not _REWARD.match(code):
        raise web.HTTPNotFound(text="404: no such reward\n", content_type="text/plain")
    catalog = await ledger.list_catalog(
        _pool(request), language=language, settings=_ledger_settings(request)
    )
    for item in catalog.value.items if catalog.value else []:
        if item.code == code:
            return item
    raise web.HTTPNotFound(text="404: no such reward\n", content_type="text/plain")


@routes.get("/rewards/{code}")
async def reward_confirm(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    item = await _reward(request, language_of(request, session))
    balance = await ledger.balance(_pool(request), msisdn, settings=_ledger_settings(request))
    return await render(
        request,
        "account/reward.html",
        msisdn=msisdn,
        item=item,
        available=balance.value.available if balance.value else None,
    )


@routes.post("/rewards/{code}")
async def reward_redeem(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    t = _texts(request, session)
    item = await _reward(request, t.language)
    nonce = form_nonce(form_of(request))
    if nonce is None:
        raise _stale_form(session, t, f"{HOME}/rewards/{item.code}")
    outcome = await ledger.redeem(
        _pool(request),
        msisdn,
        item.code,
        key=_key(msisdn, f"redeem:{item.code}", nonce),
        settings=_ledger_settings(request),
    )
    if outcome.ok and outcome.value is not None:
        value = outcome.value
        flash(
            session,
            t("rewards.done", title=item.title, points=t.points(value.points))
            + " "
            + t("rewards.left", available=t.points(value.available)),
        )
        raise _redirect(HOME)
    flash(session, _refusal(t, outcome), "error")
    raise _redirect(f"{HOME}/rewards/{item.code}")


# -- give points -----------------------------------------------------------------------


@routes.get("/give")
async def give_page(request: web.Request) -> web.StreamResponse:
    _session, msisdn = await _member(request)
    return await render(
        request, "account/give.html", msisdn=msisdn, recipient="", points="", errors={}
    )


def _gift_form(request: web.Request, t: Texts) -> tuple[str | None, int | None, dict[str, str]]:
    settings = _ledger_settings(request)
    errors: dict[str, str] = {}
    recipient = _parse_number(field(request, "recipient"), settings.default_region)
    if recipient is None:
        errors["recipient"] = t("give.bad_recipient")
    raw_points = field(request, "points").replace(" ", "")
    points = int(raw_points) if _POINTS.match(raw_points) else None
    if points is None or not settings.gift_min_points <= points <= settings.gift_max_points:
        errors["points"] = t(
            "give.bad_points",
            low=t.number(settings.gift_min_points),
            high=t.number(settings.gift_max_points),
        )
    return recipient, points, errors


@routes.post("/give")
async def give_preview(request: web.Request) -> web.StreamResponse:
    """Check the form and show the recipient in full before anything moves."""
    session, msisdn = await _member(request)
    t = _texts(request, session)
    recipient, points, errors = _gift_form(request, t)
    if errors or recipient is None or points is None:
        return await render(
            request,
            "account/give.html",
            status=422,
            msisdn=msisdn,
            recipient=field(request, "recipient"),
            points=field(request, "points"),
            errors=errors,
        )
    return await render(
        request, "account/give_confirm.html", msisdn=msisdn, recipient=recipient, points=points
    )


@routes.post("/give/confirm")
async def give_send(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    t = _texts(request, session)
    recipient, points, errors = _gift_form(request, t)
    nonce = form_nonce(form_of(request))
    if errors or recipient is None or points is None or nonce is None:
        raise _stale_form(session, t, f"{HOME}/give")
    outcome = await ledger.gift(
        _pool(request),
        msisdn,
        recipient,
        points,
        key=_key(msisdn, "gift", nonce),
        settings=_ledger_settings(request),
    )
    if outcome.ok and outcome.value is not None:
        sent = outcome.value
        flash(
            session,
            t(
                "give.done",
                points=t.points(sent.points),
                recipient=t.phone(sent.recipient),
                date=t.date(sent.expires_at),
            ),
        )
        raise _redirect(f"{HOME}/gifts")
    flash(session, _refusal(t, outcome), "error")
    raise _redirect(f"{HOME}/give")


# -- gifts -----------------------------------------------------------------------------


@routes.get("/gifts")
async def gifts(request: web.Request) -> web.StreamResponse:
    _session, msisdn = await _member(request)
    pool, settings = _pool(request), _ledger_settings(request)
    received = await ledger.pending_gifts(pool, msisdn, settings=settings)
    sent = await ledger.sent_gifts(pool, msisdn, settings=settings)
    return await render(
        request,
        "account/gifts.html",
        msisdn=msisdn,
        received=received.value.items if received.value else [],
        sent=sent.value.items if sent.value else [],
    )


def _gift_id(request: web.Request) -> int:
    raw = request.match_info["gift_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="404: no such gift\n", content_type="text/plain")
    return int(raw)


async def _resolve_gift(request: web.Request, action: str) -> web.StreamResponse:
    session, msisdn = await _member(request)
    t = _texts(request, session)
    gift_id = _gift_id(request)
    nonce = form_nonce(form_of(request))
    if nonce is None:
        raise _stale_form(session, t, f"{HOME}/gifts")
    pool, settings = _pool(request), _ledger_settings(request)
    key = _key(msisdn, f"{action}:{gift_id}", nonce)
    outcome: ledger.Outcome[Any]
    if action == "accept":
        outcome = await ledger.accept_gift(pool, msisdn, gift_id, key=key, settings=settings)
    elif action == "decline":
        outcome = await ledger.decline_gift(pool, msisdn, gift_id, key=key, settings=settings)
    else:
        outcome = await ledger.cancel_gift(pool, msisdn, gift_id, key=key, settings=settings)
    value = outcome.value
    if isinstance(value, ledger.GiftAccepted):
        flash(
            session,
            t(
                "gifts.accepted",
                points=t.points(value.points),
                available=t.points(value.available),
            ),
        )
    elif isinstance(value, ledger.GiftDeclined):
        flash(session, t("gifts.declined", points=t.points(value.points)))
    elif isinstance(value, ledger.GiftCancelled):
        flash(
            session,
            t("gifts.cancelled", points=t.points(value.points), recipient=t.phone(value.recipient)),
        )
    else:
        flash(session, _refusal(t, outcome), "error")
    raise _redirect(f"{HOME}/gifts")


@routes.post("/gifts/{gift_id}/accept")
async def gift_accept(request: web.Request) -> web.StreamResponse:
    return await _resolve_gift(request, "accept")


@routes.post("/gifts/{gift_id}/decline")
async def gift_decline(request: web.Request) -> web.StreamResponse:
    return await _resolve_gift(request, "decline")


@routes.post("/gifts/{gift_id}/cancel")
async def gift_cancel(request: web.Request) -> web.StreamResponse:
    return await _resolve_gift(request, "cancel")


# -- joining, language -----------------------------------------------------------------


@routes.post("/join")
async def join(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    t = _texts(request, session)
    nonce = form_nonce(form_of(request))
    if nonce is None:
        raise _stale_form(session, t, HOME)
    outcome = await ledger.enroll(
        _pool(request),
        msisdn,
        key=_key(msisdn, "enroll", nonce),
        language=t.language,
        channel="web",
        settings=_ledger_settings(request),
    )
    if outcome.ok or outcome.code is ledger.Code.ALREADY_ENROLLED:
        flash(session, t("join.done"))
    else:
        flash(session, _refusal(t, outcome), "error")
    raise _redirect(HOME)


@routes.get("/language")
async def language_page(request: web.Request) -> web.StreamResponse:
    _session, msisdn = await _member(request)
    return await render(request, "account/language.html", msisdn=msisdn)


@routes.post("/language")
async def language_set(request: web.Request) -> web.StreamResponse:
    session, msisdn = await _member(request)
    chosen = field(request, "language")
    nonce = form_nonce(form_of(request))
    t = _texts(request, session)
    if chosen not in LANGUAGES or nonce is None:
        raise _stale_form(session, t, f"{HOME}/language")
    outcome = await ledger.set_language(
        _pool(request),
        msisdn,
        chosen,
        key=_key(msisdn, f"language:{chosen}", nonce),
        settings=_ledger_settings(request),
    )
    if not outcome.ok:
        flash(session, _refusal(t, outcome), "error")
        raise _redirect(f"{HOME}/language")
    session["lang"] = chosen
    flash(session, texts_for(request, chosen)("language.done"))
    raise _redirect(HOME)
