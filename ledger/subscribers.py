"""Joining the programme, language, blocking, and reading a subscriber."""

from __future__ import annotations

import asyncpg

from ledger import _accounts
from ledger._tx import Op, run_operation
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.msisdn import normalize
from ledger.points import read_balance
from ledger.results import (
    Enrollment,
    LanguageChange,
    Outcome,
    StatusChange,
    Subscriber,
    SubscriberSummary,
)
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings


async def enroll(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    key: str,
    language: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Enrollment]:
    """Join the programme. Codes: ok, already_enrolled, blocked."""
    number = normalize(msisdn, settings.default_region)
    if language is not None and language not in settings.languages:
        language = None

    async def body(op: Op) -> Outcome[Enrollment]:
        sub = await _accounts.create_subscriber(
            op.conn,
            number,
            status="not_enrolled",
            language=language or settings.default_language,
            now=op.now,
        )
        op.subscriber_id = sub.id
        joined = await op.conn.fetchrow(
            "UPDATE subscribers SET status = 'active', enrolled_at = $2 "
            "WHERE id = $1 AND status = 'not_enrolled' RETURNING enrolled_at",
            sub.id,
            op.now,
        )
        if joined is not None:
            return Outcome(Code.OK, Enrollment(number, "active", joined["enrolled_at"]))
        status = await op.conn.fetchval("SELECT status FROM subscribers WHERE id = $1", sub.id)
        if status == "blocked":
            return Outcome(Code.BLOCKED)
        return Outcome(Code.ALREADY_ENROLLED, details={"status": status})

    return await run_operation(
        pool,
        kind="enroll",
        key=key,
        request={"msisdn": number, "language": language},
        value_type=Enrollment,
        body=body,
        clock=clock,
        settings=settings,
    )


async def set_language(
    pool: asyncpg.Pool,
    msisdn: str,
    language: str,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[LanguageChange]:
    """Choose the language of menus and messages; works before joining too.

    Codes: ok, unsupported_language.
    """
    number = normalize(msisdn, settings.default_region)

    async def body(op: Op) -> Outcome[LanguageChange]:
        if language not in settings.languages:
            return Outcome(
                Code.UNSUPPORTED_LANGUAGE, details={"supported": list(settings.languages)}
            )
        sub = await _accounts.create_subscriber(
            op.conn, number, status="not_enrolled", language=language, now=op.now
        )
        op.subscriber_id = sub.id
        await op.conn.execute(
            "UPDATE subscribers SET language = $2 WHERE id = $1", sub.id, language
        )
        return Outcome(Code.OK, LanguageChange(number, language))

    return await run_operation(
        pool,
        kind="set_language",
        key=key,
        request={"msisdn": number, "language": language},
        value_type=LanguageChange,
        body=body,
        clock=clock,
        settings=settings,
    )


async def block(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[StatusChange]:
    """Bar a number from the programme (an operator's decision). Code: ok.

    A blocked subscriber keeps their points but cannot spend or gift them,
    nor receive new gifts or accruals; gifts already pending to them can
    still be settled.
    """
    number = normalize(msisdn, settings.default_region)

    async def body(op: Op) -> Outcome[StatusChange]:
        sub = await _accounts.create_subscriber(
            op.conn, number, status="blocked", language=settings.default_language, now=op.now
        )
        op.subscriber_id = sub.id
        await op.conn.execute("UPDATE subscribers SET status = 'blocked' WHERE id = $1", sub.id)
        return Outcome(Code.OK, StatusChange(number, "blocked"))

    return await run_operation(
        pool,
        kind="block",
        key=key,
        request={"msisdn": number},
        value_type=StatusChange,
        body=body,
        clock=clock,
        settings=settings,
    )


async def get_subscriber(
    pool: asyncpg.Pool, msisdn: str, *, settings: LedgerSettings = DEFAULT_SETTINGS
) -> Subscriber | None:
    """The subscriber, or None for a number the ledger has never seen."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn:
        sub = await _accounts.find_subscriber(conn, number)
    if sub is None:
        return None
    return Subscriber(sub.msisdn, sub.status, sub.language, sub.enrolled_at, sub.created_at)


async def subscriber_summary(
    pool: asyncpg.Pool,
    msisdn: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> SubscriberSummary | None:
    """Status, language and balance in one consistent read; None if never seen."""
    number = normalize(msisdn, settings.default_region)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        sub = await _accounts.find_subscriber(conn, number)
        if sub is None:
            return None
        balance = await read_balance(conn, sub, clock.now(), settings)
    return SubscriberSummary(sub.msisdn, sub.status, sub.language, sub.enrolled_at, balance)
