"""The scheduled job that reminds members of points about to expire.

Each pass asks the ledger (``ledger.remind_expiring``) to claim up to
``USSD_REMINDER_BATCH`` lots expiring within ``USSD_REMINDER_DAYS`` days and
queue their SMS in the same transaction; the notification worker then
renders them (``sms.notifications.points_expiring``, in the member's
language) and delivers them like every other notification. Passes run only
in ``USSD_REMINDER_HOURS`` of the programme's day (no SMS at night). Every service
process and ``ussd-service worker`` run it: the ledger's claim makes
concurrent passes take different lots, so each lot is reminded once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import structlog

import ledger
from ussd_service.config import Settings
from ussd_service.operations import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

# While the ledger is unreachable a pass is retried after this long at most.
MAX_ERROR_WAIT_S = 600.0


def sending_hours(moment: datetime, settings: Settings) -> bool:
    """True when ``moment`` falls in the reminder hours of the programme's local day."""
    start, end = settings.reminder_window
    local = moment.astimezone(ZoneInfo(settings.ledger_settings().timezone))
    return start <= local.hour < end


async def remind_once(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    clock: ledger.Clock = ledger.SYSTEM_CLOCK,
) -> ledger.ReminderRun:
    """One pass at the clock's time (nothing when ``reminder_days`` is 0 or out of hours)."""
    if not sending_hours(clock.now(), settings):
        return ledger.ReminderRun(0, 0)
    return await ledger.remind_expiring(
        pool,
        within=timedelta(days=settings.reminder_days),
        batch=settings.reminder_batch,
        clock=clock,
        settings=settings.ledger_settings(),
    )


async def run_reminders(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    clock: ledger.Clock = ledger.SYSTEM_CLOCK,
    stop: asyncio.Event | None = None,
) -> None:
    """Pass after pass until ``stop`` is set or the task is cancelled.

    A full batch is followed at once by the next; otherwise the job waits
    ``reminder_interval`` seconds. A failed pass is logged and retried later.
    """
    if settings.reminder_days == 0:
        log.info("reminders_off", reason="USSD_REMINDER_DAYS is 0")
        return
    stop = stop or asyncio.Event()
    failures = 0
    while not stop.is_set():
        wait = settings.reminder_interval
        try:
            run = await remind_once(pool, settings, clock=clock)
            failures = 0
            if run.lots:
                log.info("reminders_queued", lots=run.lots, messages=run.messages)
            if run.lots >= settings.reminder_batch:
                continue
        except UNAVAILABLE_ERRORS as exc:
            failures += 1
            wait = min(settings.reminder_interval * 2 ** min(failures, 10), MAX_ERROR_WAIT_S)
            log.warning("reminders_unavailable", error=type(exc).__name__, retry_in_s=wait)
        except Exception:
            # A bug must not stop the reminders of the service for good.
            failures += 1
            wait = min(settings.reminder_interval * 2 ** min(failures, 10), MAX_ERROR_WAIT_S)
            log.exception("reminders_failed", retry_in_s=wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
