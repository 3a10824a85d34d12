"""Expiry reminders end to end: queued by the job, rendered and sent by the worker (fake SMSC)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from sms_harness import RECIPIENT, SENDER, THIRD, FakeGateway, member, run_worker_once

import ledger
from menus.text import format_day
from ussd_service import reminders
from ussd_service.config import Settings
from ussd_service.notifier import Notifier

MOSCOW = ZoneInfo("Europe/Moscow")


def reminder_texts(fake: FakeGateway, msisdn: str) -> list[str]:
    """The reminders among what ``msisdn`` received (joining sends a welcome SMS too)."""
    return [t for t in fake.texts_to(msisdn) if "Награды:" in t or "for rewards" in t]


async def credit(pool: asyncpg.Pool, msisdn: str, points: int, day: date, key: str) -> None:
    assert (await ledger.accrue(pool, msisdn, points, key=key, expires_at=day)).ok


async def test_members_are_told_once_in_their_language(
    pg_pool: asyncpg.Pool,
    settings: Settings,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    fake, _ = gateway
    settings = settings.model_copy(update={"reminder_hours": "0-24"})  # whenever the test runs
    today = clock.now().date()
    soon, later, far = today + timedelta(days=10), today + timedelta(days=3), today + timedelta(40)
    await member(pg_pool, SENDER)
    await member(pg_pool, RECIPIENT, language="en")
    await member(pg_pool, THIRD)
    await credit(pg_pool, SENDER, 1000, soon, "a1")
    await credit(pg_pool, SENDER, 250, soon, "a2")
    await credit(pg_pool, RECIPIENT, 1, later, "b1")
    await credit(pg_pool, RECIPIENT, 21, soon, "b2")
    await credit(pg_pool, THIRD, 500, far, "c1")  # beyond USSD_REMINDER_DAYS (14)

    # Two processes' passes at once, then another later: one SMS per member and day.
    runs = await asyncio.gather(
        reminders.remind_once(pg_pool, settings, clock=clock),
        reminders.remind_once(pg_pool, settings, clock=clock),
    )
    assert sum(run.lots for run in runs) == 4
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 0
    await notifier.run_once()
    await notifier.run_once()

    assert reminder_texts(fake, SENDER) == [
        f"{format_day(soon, 'ru')} сгорят 1 250 баллов. Награды: *111*455#"
    ]
    assert sorted(reminder_texts(fake, RECIPIENT)) == sorted(
        [
            f"1 point expires on {format_day(later, 'en')}. Dial *111*455# for rewards.",
            f"21 points expire on {format_day(soon, 'en')}. Dial *111*455# for rewards.",
        ]
    )
    assert reminder_texts(fake, THIRD) == []
    reminded = [m for m in await ledger.list_outbox(pg_pool) if m.event == "points_expiring"]
    assert [m.status for m in reminded] == ["sent"] * 3

    # A month on, the far lot comes into the window; the others never again.
    clock.advance(timedelta(days=30))
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 1
    await notifier.run_once()
    assert reminder_texts(fake, THIRD) == [
        f"{format_day(far, 'ru')} сгорят 500 баллов. Награды: *111*455#"
    ]
    assert len(reminder_texts(fake, SENDER)) == 1
    assert await ledger.check(pg_pool) == []


async def test_reminders_off_and_window_from_settings(
    pg_pool: asyncpg.Pool, settings: Settings, clock: ledger.ManualClock
) -> None:
    settings = settings.model_copy(update={"reminder_hours": "0-24"})
    await member(pg_pool, SENDER)
    await credit(pg_pool, SENDER, 10, clock.now().date() + timedelta(days=20), "k")
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 0
    off = settings.model_copy(update={"reminder_days": 0})
    assert (await reminders.remind_once(pg_pool, off, clock=clock)).lots == 0
    wider = settings.model_copy(update={"reminder_days": 30})
    assert (await reminders.remind_once(pg_pool, wider, clock=clock)).lots == 1


async def test_worker_command_sends_the_reminders(
    settings: Settings, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER)
    day = date.today() + timedelta(days=2)
    await credit(pg_pool, SENDER, 7, day, "w1")
    out, _ = await run_worker_once(
        settings, USSD_LOG_FORMAT="json", USSD_REMINDER_DAYS="3", USSD_REMINDER_HOURS="0-24"
    )
    assert ", sent 1, retrying 0," in out
    sent = [m for m in await ledger.list_outbox(pg_pool) if m.event == "points_expiring"]
    assert [(m.status, m.payload["points"]) for m in sent] == [("sent", 7)]


async def test_no_reminders_at_night(pg_pool: asyncpg.Pool, settings: Settings) -> None:
    await member(pg_pool, SENDER)
    tomorrow = datetime.now(MOSCOW).date() + timedelta(days=1)
    await credit(pg_pool, SENDER, 10, tomorrow + timedelta(days=5), "n")
    # 10-21 in Moscow (the default): not at 09:59 or 21:00, yes at 10:00.
    clock = ledger.ManualClock(datetime.combine(tomorrow, time(9, 59), tzinfo=MOSCOW))
    assert settings.reminder_hours == "10-21"
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 0
    clock.set(datetime.combine(tomorrow, time(21, 0), tzinfo=MOSCOW))
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 0
    clock.set(datetime.combine(tomorrow, time(10, 0), tzinfo=MOSCOW))
    assert (await reminders.remind_once(pg_pool, settings, clock=clock)).lots == 1
