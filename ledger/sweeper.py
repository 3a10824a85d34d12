"""The periodic task the service runs: expire gifts and points."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import structlog

from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.gifts import expire_gifts
from ledger.points import expire_points
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepReport:
    gifts_expired: int
    points_expired: int


async def sweep(
    pool: asyncpg.Pool,
    *,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> SweepReport:
    """One pass of both sweepers at the clock's current time."""
    now = clock.now()
    gifts = await expire_gifts(pool, now, clock=clock, settings=settings)
    points = await expire_points(pool, now, clock=clock, settings=settings)
    return SweepReport(gifts, points)


async def run_sweeper(
    pool: asyncpg.Pool,
    *,
    interval_s: float = 60.0,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> None:
    """Sweep every ``interval_s`` seconds until cancelled; a failed pass is logged and retried.

    Several service processes may run it at once: the sweepers skip rows
    another one holds, and every expiry is guarded, so nothing is done twice.
    """
    while True:
        try:
            report = await sweep(pool, clock=clock, settings=settings)
            if report.gifts_expired or report.points_expired:
                log.info(
                    "ledger.sweep",
                    gifts_expired=report.gifts_expired,
                    points_expired=report.points_expired,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("ledger.sweep_failed")
        await asyncio.sleep(interval_s)
