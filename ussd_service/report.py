"""The drop-off report: where callers give up, per menu node.

``ussd-service report [--since DATE] [--until DATE]`` reads the daily Redis
counters of ``session_store.dropoff`` and prints one row per node, sorted by
abandon rate. ``DropoffCollector`` exports the same counts to Prometheus: it
serves a snapshot that ``dropoff_metrics_ctx`` (an ``app.cleanup_ctx``)
refreshes in the background, because a collector's ``collect`` is synchronous
and must not do network I/O on the scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from session_store import StoreUnavailableError
from session_store.dropoff import NodeCounts, NodeKey, RedisDropoffCounters
from ussd_service.backends import backing_servers
from ussd_service.config import ConfigError, load_settings
from ussd_service.keys import METRICS, REDIS

log = structlog.get_logger(__name__)

# The report's default window, and the exporter's.
DEFAULT_REPORT_DAYS = 7
METRICS_WINDOW_DAYS = 1
METRICS_REFRESH_S = 15.0
METRIC_PREFIX = "ussd_dropoff"
COLUMNS = (
    "node",
    "entries",
    "invalid",
    "timeouts",
    "abandons",
    "handoffs",
    "completed",
    "open",
    "abandon %",
    "exits",
)


@dataclass(frozen=True)
class Row:
    """One node's line of the report."""

    version: str
    node: str
    counts: NodeCounts

    @property
    def abandon_rate(self) -> float:
        """Abandons per entry (0 for a node never entered)."""
        return self.counts.abandons / self.counts.entries if self.counts.entries else 0.0


def rows(totals: Mapping[NodeKey, NodeCounts]) -> list[Row]:
    """Rows sorted by abandon rate, then abandons, then entries (highest first)."""
    found = [Row(key.menu_version, key.node, counts) for key, counts in totals.items()]
    return sorted(
        found,
        key=lambda r: (-r.abandon_rate, -r.counts.abandons, -r.counts.entries, r.version, r.node),
    )


def _exits(counts: NodeCounts) -> str:
    ordered = sorted(counts.exits.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{target}:{n}" for target, n in ordered) or "-"


def format_table(report_rows: Iterable[Row], *, with_version: bool = False) -> str:
    """A plain-text table, one line per node."""
    table: list[list[str]] = []
    for row in report_rows:
        c = row.counts
        node = f"{row.version}:{row.node}" if with_version else row.node
        table.append(
            [
                node,
                str(c.entries),
                str(c.invalid),
                str(c.timeouts),
                str(c.abandons),
                str(c.handoffs),
                str(c.completions),
                str(c.unaccounted),
                f"{100 * row.abandon_rate:.1f}",
                _exits(c),
            ]
        )
    if not table:
        return "no drop-off counts in this period\n"
    widths = [max(len(COLUMNS[i]), *(len(line[i]) for line in table)) for i in range(len(COLUMNS))]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        parts = [
            cell.ljust(widths[i]) if i in (0, len(cells) - 1) else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(cells) for cells in table]
    return "\n".join(out) + "\n"


async def read_report(
    redis_url: str, since: date, until: date, menu_version: str | None = None
) -> dict[NodeKey, NodeCounts]:
    """The counters of ``since..until`` (UTC days, inclusive)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        return await RedisDropoffCounters(client).read(since, until, menu_version=menu_version)
    finally:
        await client.aclose()


def _today() -> date:
    return datetime.now(UTC).date()


@click.command()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help=f"First UTC day (default: {DEFAULT_REPORT_DAYS - 1} days before --until).",
)
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="Last UTC day (today).")
@click.option("--menu-version", help="Only this menu version (default: all, one row per version).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def report(
    since: datetime | None,
    until: datetime | None,
    menu_version: str | None,
    data_dir: Path | None,
) -> None:
    """Drop-off per menu node: entries, exits, invalid inputs, timeouts, abandons, handoffs."""
    last = until.date() if until else _today()
    first = since.date() if since else last - timedelta(days=DEFAULT_REPORT_DAYS - 1)
    if last < first:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    try:
        settings = load_settings(data_dir=data_dir)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # Only Redis is needed: keep an external DATABASE_URL from starting PostgreSQL.
    settings = settings.model_copy(
        update={"database_url": settings.database_url or "postgresql://unused@/unused"}
    )
    with backing_servers(settings) as resolved:
        assert resolved.redis_url
        try:
            totals = asyncio.run(read_report(resolved.redis_url, first, last, menu_version))
        except StoreUnavailableError as exc:
            raise click.ClickException(f"Redis is unavailable: {exc}") from None
    versions = {key.menu_version for key in totals}
    click.echo(f"drop-off per node, {first.isoformat()} .. {last.isoformat()} (UTC)")
    click.echo(format_table(rows(totals), with_version=len(versions) > 1), nl=False)


# --------------------------------------------------------------------------- Prometheus


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
        last = today or _today()
        first = last - timedelta(days=self._window_days - 1)
        self._snapshot = await self._counters.read(first, last)

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
