"""``report`` and the Prometheus collector, after a scripted load with known drop-offs."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest

from designer.report import format_table, read_report, rows
from designer.simulator import Phone, ServiceClient, serve_app
from session_store.dropoff import (
    DropoffEvent,
    DropoffKind,
    NodeCounts,
    NodeKey,
    RedisDropoffCounters,
)
from ussd_service.channels import dialect
from ussd_service.config import Settings
from ussd_service.dropoff_metrics import DropoffCollector

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ussd-service")
CONCURRENCY = 20
# Sessions of numbers not in the programme (they start at join_menu), by script.
ABANDON_AT_JOIN_MENU = 120  # dial, hang up
ABANDON_AT_CONFIRM = 80  # dial, 1, hang up
INVALID_THEN_ABANDON = 60  # dial, 9 (invalid), hang up
TO_OPERATOR = 40  # dial, 3 (operator)


async def _session(service: ServiceClient, number: int, script: str) -> None:
    phone = Phone(service, dialect("native"), f"+7916{number:07d}")
    await phone.dial()
    for key in script:
        await phone.send(key)
    await phone.hang_up()


async def _load(settings: Settings) -> None:
    plan = (
        [""] * ABANDON_AT_JOIN_MENU
        + ["1"] * ABANDON_AT_CONFIRM
        + ["9"] * INVALID_THEN_ABANDON
        + ["3"] * TO_OPERATOR
    )
    # Leaving serve_app stops the app, which flushes the drop-off buffer.
    async with serve_app(settings) as url, aiohttp.ClientSession() as http:
        service = ServiceClient(http, url)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(number: int, script: str) -> None:
            async with limit:
                await _session(service, 3_000_000 + number, script)

        await asyncio.gather(*(one(n, s) for n, s in enumerate(plan)))


async def _report_cli(redis_url: str, database_url: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url}
    env["DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "report",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _row(output: str, node: str) -> list[str]:
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == node:
            return cells
    raise AssertionError(f"no row for {node} in:\n{output}")


async def test_report_after_a_scripted_load_shows_exactly_the_drop_offs(
    settings: Settings, database_url: str, redis_client
) -> None:
    sessions = ABANDON_AT_JOIN_MENU + ABANDON_AT_CONFIRM + INVALID_THEN_ABANDON + TO_OPERATOR
    assert sessions == 300
    await _load(settings)
    today = datetime.now(UTC).date()
    assert settings.redis_url is not None
    totals = {
        key.node: counts
        for key, counts in (await read_report(settings.redis_url, today, today)).items()
    }
    join_menu = totals["join_menu"]
    assert join_menu.entries == sessions
    assert join_menu.exits == {"join_confirm": ABANDON_AT_CONFIRM, "operator": TO_OPERATOR}
    assert join_menu.invalid == INVALID_THEN_ABANDON
    assert join_menu.abandons == ABANDON_AT_JOIN_MENU + INVALID_THEN_ABANDON
    assert join_menu.handoffs == 0
    confirm = totals["join_confirm"]
    assert (confirm.entries, confirm.abandons, confirm.exits) == (ABANDON_AT_CONFIRM,) * 2 + ({},)
    operator = totals["operator"]
    assert (operator.entries, operator.handoffs, operator.abandons) == (TO_OPERATOR, TO_OPERATOR, 0)

    output = await _report_cli(settings.redis_url, database_url, "--since", today.isoformat())
    lines = output.splitlines()
    assert lines[1].split()[:2] == ["node", "entries"]
    # Sorted by abandon rate: join_confirm (100 %), join_menu (60 %), operator (0 %).
    order = [line.split()[0] for line in lines[3:]]
    assert order.index("join_confirm") < order.index("join_menu") < order.index("operator")
    assert _row(output, "join_confirm")[1:10] == ["80", "0", "0", "80", "0", "0", "0", "100.0", "-"]
    assert _row(output, "join_menu")[1:9] == ["300", "60", "0", "180", "0", "0", "0", "60.0"]
    assert "join_confirm:80, operator:40" in output
    assert _row(output, "operator")[1:9] == ["40", "0", "0", "0", "40", "0", "0", "0.0"]


async def test_collector_exports_the_counters(redis_client) -> None:
    counters = RedisDropoffCounters(redis_client)
    # Counted today (older buckets may already have expired in Redis).
    at = datetime.now(UTC)
    day = at.date()
    events = [DropoffEvent("v1", "main", DropoffKind.ENTRY)] * 5
    events += [DropoffEvent("v1", "main", DropoffKind.EXIT, "balance")] * 3
    events += [DropoffEvent("v1", "main", DropoffKind.ABANDON)] * 2
    events += [DropoffEvent("v1", "main", DropoffKind.TIMEOUT)]
    await counters.record(events, at)
    collector = DropoffCollector(counters)
    registry = CollectorRegistry()
    registry.register(collector)
    await collector.refresh(today=day)
    text = generate_latest(registry).decode()
    assert 'ussd_dropoff_entries{menu_version="v1",node="main"} 5.0' in text
    assert 'ussd_dropoff_abandons{menu_version="v1",node="main"} 2.0' in text
    assert 'ussd_dropoff_timeouts{menu_version="v1",node="main"} 1.0' in text
    assert 'ussd_dropoff_exits{menu_version="v1",node="main",target="balance"} 3.0' in text
    # A day outside the window is not exported.
    await collector.refresh(today=day + timedelta(days=2))
    assert "ussd_dropoff_entries{" not in generate_latest(registry).decode()


def test_table_sorts_by_abandon_rate() -> None:
    totals = {
        NodeKey("v1", "a"): NodeCounts(entries=10, abandons=1),
        NodeKey("v1", "b"): NodeCounts(entries=4, abandons=2, exits={"c": 2}),
        NodeKey("v1", "c"): NodeCounts(entries=2, handoffs=2),
    }
    table = format_table(rows(totals))
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["b", "a", "c"]
    assert format_table([]) == "no drop-off counts in this period\n"
