"""``ussd-service report``: where callers give up, per menu node.

``report [--since DATE] [--until DATE]`` reads the daily Redis counters of
``session_store.dropoff`` and prints one row per node, sorted by abandon rate.
The service exports the same counters on /metrics
(``ussd_service.dropoff_metrics``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import click

from session_store import StoreUnavailableError
from session_store.dropoff import NodeCounts, NodeKey, RedisDropoffCounters
from ussd_service.backends import backing_servers, open_redis
from ussd_service.config import ConfigError, load_settings
from ussd_service.dropoff_metrics import utc_today, window_start

# The report's default window.
DEFAULT_REPORT_DAYS = 7
# The report reads the days in one pipelined round trip: one connection.
REPORT_REDIS_CONNECTIONS = 1
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
    client = await open_redis(redis_url, max_connections=REPORT_REDIS_CONNECTIONS)
    try:
        return await RedisDropoffCounters(client).read(since, until, menu_version=menu_version)
    finally:
        await client.aclose()


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
    last = until.date() if until else utc_today()
    first = since.date() if since else window_start(last, DEFAULT_REPORT_DAYS)
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
