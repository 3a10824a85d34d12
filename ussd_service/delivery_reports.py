"""Delivery reports of notifications: the third core beside the dialogue and the SMS desk.

The SMS gateway calls back (Kannel's ``dlr-url``, see ``channels/sms.py``)
for each notification the notifier sent with a report request. The dialect
parses the call into a ``DeliveryReport``; ``DeliveryReports.record`` writes
it on the outbox message (``ledger.outbox.record_delivery_report``): delivered,
or not delivered — retried with backoff when the failure is temporary, parked
as ``failed`` when it is permanent — or progress (the SMSC holds or took it).
``GET /v1/outbox`` shows the latest report per message and the counter
``ussd_sms_delivery_reports_total{result}`` counts them.

No HTTP here: the generic gateway handler hands the parsed report over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

import ledger
from ledger.outbox import DlrResult, DlrStatus, record_delivery_report
from ussd_service.keys import METRICS, SETTINGS
from ussd_service.operations import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

#: Results counted: what ``record_delivery_report`` did, or ``unavailable``.
RESULTS: tuple[str, ...] = (
    "delivered",
    "retrying",
    "parked",
    "progress",
    "duplicate",
    "stale",
    "unknown",
    "unavailable",
)


class LedgerUnavailableError(Exception):
    """The report could not be written: the gateway should report again later."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What the gateway says about attempt ``attempt`` of outbox message ``outbox_id``.

    ``permanent`` matters for ``failed`` only: no retry can help. ``at`` is
    the gateway's time of the event when it gives one; ``detail`` its own words.
    """

    outbox_id: int
    attempt: int
    status: DlrStatus
    permanent: bool = False
    at: datetime | None = None
    detail: str | None = None


class DeliveryReports:
    """Records delivery reports on the outbox and counts them by result."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        clock: ledger.Clock = ledger.SYSTEM_CLOCK,
        settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.counter = Counter(
            "ussd_sms_delivery_reports",
            "Delivery reports of notifications from the SMS gateway, by result "
            "(delivered, retrying, parked, progress, duplicate, stale, unknown, unavailable).",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.counter.labels(result)

    async def record(self, pool: asyncpg.Pool, report: DeliveryReport) -> DlrResult:
        """Write ``report``; raises LedgerUnavailableError when PostgreSQL does not answer."""
        try:
            result = await record_delivery_report(
                pool,
                report.outbox_id,
                report.attempt,
                report.status,
                permanent=report.permanent,
                detail=report.detail,
                at=report.at,
                clock=self.clock,
                settings=self.settings,
            )
        except UNAVAILABLE_ERRORS as exc:
            self.counter.labels("unavailable").inc()
            log.warning("delivery_report_unavailable", error=type(exc).__name__)
            raise LedgerUnavailableError(str(exc)) from exc
        self.counter.labels(result).inc()
        log.info(
            "delivery_report",
            outbox_id=report.outbox_id,
            attempt=report.attempt,
            dlr=report.status,
            permanent=report.permanent,
            result=result,
        )
        return result


#: The application's delivery-report core (set by ``install``).
DELIVERY_REPORTS = web.AppKey("delivery_reports", DeliveryReports)


def install(app: web.Application) -> DeliveryReports:
    """Give ``app`` its delivery-report core, its counter on the app's metrics registry."""
    core = DeliveryReports(app[METRICS].registry, settings=app[SETTINGS].ledger_settings())
    app[DELIVERY_REPORTS] = core
    return core
