"""Drop-off counters on /metrics: where callers give up, per menu node.

``DropoffCollector`` exports the daily Redis counters of
``session_store.dropoff`` as Prometheus gauges. It serves a snapshot that
``dropoff_metrics_ctx`` (an ``app.cleanup_ctx``) refreshes in the background,
because a collector's ``collect`` is synchronous and must not do network I/O
on the scrape. The designers' ``report`` command reads the same counters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import structlog
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from session_store import StoreUnavailableError
from session_store.dropoff import NodeCounts, NodeKey, RedisDropoffCounters
from ussd_service.keys import METRICS, REDIS

log = structlog.get_logger(__name__)

METRICS_WINDOW_DAYS = 1
METRICS_REFRESH_S = 15.0
METRIC_PREFIX = "ussd_dropoff"


def utc_today() -> date:
    """Today's UTC date: the counters are bucketed by UTC day."""
    return datetime.now(UTC).date()


def window_start(last: date, days: int) -> date:
    """The first day of a window of ``days`` UTC days ending with ``last``."""
    return last - timedelta(days=days - 1)


class DropoffCollector(Collector):
    """Prometheus families of the drop-off counters over the last ``window_days`` UTC days.

    ``collect`` serves the snapshot of the last ``refresh`` (no I/O on a scrape).
    The values are gauges: they are totals over a sliding window of days, so
    they can go down when a day leaves the window.
    """

    def __init__(
        self, counters: RedisDropoffCounters, *, window_days: int = METRICS_WINDOW_DAYS
    ) -> None:
        self._counters = counters
        self._window_days = window_days
        self._snapshot: dict[NodeKey, NodeCounts] = {}

    async def refresh(self, today: date | None = None) -> None:
        """Read the counters of the window now."""
        last = today or utc_today()
        self._snapshot = await self._counters.read(window_start(last, self._window_days), last)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """No description ahead of time (the families are built per scrape)."""
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """One family per count kind, labelled by menu version and node."""
        labels = ["menu_version", "node"]
        window = f" over the last {self._window_days} UTC day(s)"
        families = {
            "entries": GaugeMetricFamily(
                f"{METRIC_PREFIX}_entries", "Times a node was shown" + window, labels=labels
            ),
            "invalid": GaugeMetricFamily(
                f"{METRIC_PREFIX}_invalid_inputs",
                "Invalid inputs at a node" + window,
                labels=labels,
            ),
            "timeouts": GaugeMetricFamily(
                f"{METRIC_PREFIX}_timeouts", "Input timeouts at a node" + window, labels=labels
            ),
            "abandons": GaugeMetricFamily(
                f"{METRIC_PREFIX}_abandons",
                "Sessions that ended unfinished at a node" + window,
                labels=labels,
            ),
            "handoffs": GaugeMetricFamily(
                f"{METRIC_PREFIX}_handoffs", "Handoffs to an operator" + window, labels=labels
            ),
            "completions": GaugeMetricFamily(
                f"{METRIC_PREFIX}_completions",
                "Sessions that ended at a node as designed" + window,
                labels=labels,
            ),
        }
        exits = GaugeMetricFamily(
            f"{METRIC_PREFIX}_exits",
            "Exits from a node to a target" + window,
            labels=[*labels, "target"],
        )
        for key, counts in sorted(self._snapshot.items()):
            values = [key.menu_version, key.node]
            for name, family in families.items():
                family.add_metric(values, float(getattr(counts, name)))
            for target, n in sorted(counts.exits.items()):
                exits.add_metric([*values, target], float(n))
        yield from families.values()
        yield exits


async def _refresh_forever(collector: DropoffCollector, interval: float) -> None:
    while True:
        try:
            await collector.refresh()
        except StoreUnavailableError as exc:
            log.warning("dropoff_metrics_refresh_failed", error=str(exc))
        # redis-py may absorb a cancellation that lands mid-command (it resets
        # the connection and returns): a pending cancel must still end the loop.
        if _cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(interval)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def dropoff_metrics_ctx(
    interval: float = METRICS_REFRESH_S,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry: register the collector, refresh it periodically.

    Append after the Redis context: ``app.cleanup_ctx.append(dropoff_metrics_ctx())``.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        collector = DropoffCollector(RedisDropoffCounters(app[REDIS]))
        registry = app[METRICS].registry
        registry.register(collector)
        task = asyncio.create_task(_refresh_forever(collector, interval), name="dropoff-metrics")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        registry.unregister(collector)

    return ctx
