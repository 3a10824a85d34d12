"""Events from the operator's systems (``POST /v1/events``) turned into points by the rules.

An event says what happened to a subscriber: a ``topup`` of ``amount``
roubles, ``tenure`` of ``amount`` whole months with the operator, or that
they ``joined`` the programme. The earning rules (``earning_rules``) say
what it earns; the ledger credits it as one operation under the event's
``idempotency_key``, so a retried event moves nothing twice and the same key
with another event is refused.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

import ledger
from ussd_service.channels.forms import unstorable
from ussd_service.earning_rules import MAX_VALIDITY_MONTHS, EarningRules

MAX_IDEMPOTENCY_KEY = 128
# The operator's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)
# Older events could earn nothing that has not expired (and would not fit a date).
MAX_EVENT_AGE = timedelta(days=31 * MAX_VALIDITY_MONTHS)
MAX_TOPUP_ROUBLES = Decimal(1_000_000)
MAX_TENURE_MONTHS = 1200
# Idempotency keys of events live apart from those of /v1/accruals.
KEY_PREFIX = "event:"


def _storable(value: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Text = Annotated[str, AfterValidator(_storable)]


class EventRequest(BaseModel):
    """Body of ``POST /v1/events``."""

    model_config = ConfigDict(extra="forbid")

    msisdn: Text = Field(max_length=32)
    kind: Literal["topup", "tenure", "joined"]
    # Roubles (up to kopecks) for a top-up, whole months for tenure, absent or 0 for joined.
    amount: Decimal | None = Field(
        default=None, ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False
    )
    occurred_at: AwareDatetime
    idempotency_key: Text = Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)


def _amount(body: EventRequest) -> Decimal:
    """The event's amount, checked for its kind; ValueError naming the field otherwise."""
    amount = body.amount
    if body.kind == "joined":
        if amount:
            raise ValueError("amount: a joined event takes no amount (leave it out or send 0)")
        return Decimal(0)
    if amount is None:
        unit = "roubles" if body.kind == "topup" else "whole months of tenure"
        raise ValueError(f"amount: required for {body.kind} ({unit})")
    if body.kind == "topup":
        if not 0 < amount <= MAX_TOPUP_ROUBLES:
            raise ValueError(f"amount: a top-up is more than 0 and at most {MAX_TOPUP_ROUBLES}")
        return amount
    if amount != amount.to_integral_value() or not 1 <= amount <= MAX_TENURE_MONTHS:
        raise ValueError(
            f"amount: tenure is a whole number of months from 1 to {MAX_TENURE_MONTHS}"
        )
    return amount


def _request(number: str, body: EventRequest, amount: Decimal) -> dict[str, Any]:
    """The event as its idempotency key remembers it (same event, however written)."""
    return {
        "msisdn": number,
        "kind": body.kind,
        "amount": format(amount.normalize(), "f"),
        "occurred_at": body.occurred_at.astimezone(UTC).isoformat(),
    }


async def apply_event(
    pool: asyncpg.Pool,
    rules: EarningRules,
    body: EventRequest,
    *,
    clock: ledger.Clock = ledger.SYSTEM_CLOCK,
    settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
) -> ledger.Outcome[ledger.Earning]:
    """Apply the rules to the event and credit what it earns.

    Raises ValueError (``field: reason``) for an event that cannot be
    applied: a bad number or amount, a moment in the future or too old for
    its points not to have expired. Codes: ok, not_enrolled, blocked,
    idempotency_conflict.
    """
    number = ledger.try_normalize_msisdn(body.msisdn, settings.default_region)
    if number is None:
        raise ValueError("msisdn: not a valid phone number")
    amount = _amount(body)
    now = clock.now()
    # Compared as aware moments, never converted: year 1 or 9999 is refused here.
    if body.occurred_at > now + CLOCK_SKEW:
        raise ValueError("occurred_at: in the future")
    if body.occurred_at < now - MAX_EVENT_AGE:
        raise ValueError("occurred_at: too old to earn points")
    grants = rules.grants(body.kind, amount, body.occurred_at, settings)
    try:
        return await ledger.earn(
            pool,
            number,
            body.kind,
            body.occurred_at,
            grants,
            key=KEY_PREFIX + body.idempotency_key,
            request=_request(number, body, amount),
            clock=clock,
            settings=settings,
        )
    except ValueError as exc:
        # The ledger's expiry check: what the event earns would already be gone.
        raise ValueError(f"occurred_at: too old to earn points ({exc})") from None


def answer(outcome: ledger.Outcome[ledger.Earning]) -> dict[str, Any]:
    """The JSON answer to an applied event (the same for its retries)."""
    earning = outcome.unwrap()
    return {
        "msisdn": earning.msisdn,
        "kind": earning.kind,
        "points": earning.points,
        "available": earning.available,
        "accruals": list(outcome.details.get("accruals", [])),
        "skipped": list(outcome.details.get("skipped", [])),
    }
