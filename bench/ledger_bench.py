"""Ledger throughput: gifts, accepts and redemptions per second with N concurrent clients.

    .venv/bin/python -m bench.ledger_bench [--clients 64] [--pool N] [--seconds 10]
        [--scenarios gift,accept,...] [--pg-setting commit_delay=20 ...]

Without ``DATABASE_URL`` it starts its own durable PostgreSQL (fsync on,
synchronous commit) in a temporary directory, as production would run; with
it, it migrates that database and works with numbers of its own. Each client
is one asyncio task calling the ledger functions directly (no HTTP), each call
one transaction. ``ledger check`` runs at the end.

Per scenario it prints operations/s, latency, PostgreSQL's CPU per operation
(user + system time of the postmaster and all its processes, psutil) and the
statements the driver sent per operation (asyncpg's query logger: BEGIN,
COMMIT and the pool's reset query count; a prepare on a statement-cache miss
does not). The pool is ``open_pg_pool``'s, as the service opens it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

import ledger
from embedded_servers import EmbeddedServers
from ledger.migrations import migrate
from ussd_service.backends import PG_STATEMENT_CACHE_PARAM, connect_pg, open_pg_pool

POINTS_EACH = 10_000_000
GIFT_POINTS = 10
REWARD = "sms-50"
SCENARIOS = ("gift", "accept", "crossing", "redeem", "redeem_dev", "balance")
# Limits raised so the benchmark measures the ledger, not the business rules.
BENCH_SETTINGS = ledger.LedgerSettings(
    gift_daily_cap_points=10**12, gift_max_points=10**6, provisioning="external"
)
DEV_SETTINGS = ledger.LedgerSettings(
    gift_daily_cap_points=10**12, gift_max_points=10**6, provisioning="dev"
)


@dataclass
class Figures:
    name: str
    ok: int
    rejected: int
    seconds: float
    latencies: list[float]
    pg_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    statements: int = 0

    def line(self) -> str:
        done = self.ok + self.rejected
        rate = self.ok / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        p95 = lat[int(len(lat) * 0.95) - 1 if len(lat) > 1 else 0] * 1000
        per_op = 1e6 * self.pg_cpu_s / done if done else 0.0
        client = 1e6 * self.client_cpu_s / done if done else 0.0
        trips = self.statements / done if done else 0.0
        return (
            f"{self.name:<36} {rate:>7.0f}/s  ok={self.ok:<6} rej={self.rejected:<4} "
            f"p50={p50:6.1f} ms  p95={p95:6.1f} ms  pgCPU={per_op:5.0f} us/op  "
            f"clientCPU={client:4.0f} us/op  stmts={trips:4.1f}/op"
        )


@dataclass
class Meters:
    """PostgreSQL's CPU (its whole process tree) and the statements the driver sent."""

    postmaster: psutil.Process | None = None
    statements: int = 0
    _seen: dict[int, float] = field(default_factory=dict)

    def count(self, _query: Any) -> None:
        self.statements += 1

    def pg_cpu(self) -> float:
        """CPU seconds of PostgreSQL so far (processes that exited keep their last reading)."""
        if self.postmaster is None:
            return 0.0
        try:
            procs = [self.postmaster, *self.postmaster.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            self._seen[proc.pid] = times.user + times.system
        return sum(self._seen.values())


async def _drive(
    name: str,
    clients: int,
    seconds: float,
    call: Callable[[int, int], Awaitable[ledger.Outcome[Any]]],
    meters: Meters,
    *,
    until_refused: bool = False,
) -> Figures:
    """Run ``call(client, i)`` in a loop on ``clients`` tasks for ``seconds``.

    ``until_refused``: a client also stops at its first rejection (accepts
    stop when the gifts sent to their recipient are all taken), and the rate is
    over the time until the last client stopped.
    """
    deadline = time.perf_counter() + seconds
    ok = rejected = 0
    latencies: list[float] = []

    async def client(index: int) -> None:
        nonlocal ok, rejected
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            outcome = await call(index, i)
            latencies.append(time.perf_counter() - started)
            if outcome.ok:
                ok += 1
            else:
                rejected += 1
                if until_refused:
                    return
            i += 1

    cpu_before, statements_before = meters.pg_cpu(), meters.statements
    # This process: the ledger's Python side (asyncpg, hashing, decoding) and the driver loop.
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    # Let the query loggers' callbacks (scheduled with call_soon) run.
    await asyncio.sleep(0)
    return Figures(
        name,
        ok,
        rejected,
        elapsed,
        latencies,
        pg_cpu_s=meters.pg_cpu() - cpu_before,
        client_cpu_s=time.process_time() - client_before,
        statements=meters.statements - statements_before,
    )


async def run(
    database_url: str,
    clients: int,
    seconds: float,
    *,
    pool_size: int | None = None,
    scenarios: tuple[str, ...] = SCENARIOS,
) -> list[Figures]:
    pool_size = pool_size or clients
    meters = Meters()
    conn = await connect_pg(database_url)
    try:
        await migrate(conn)
        shown = ("fsync", "synchronous_commit", "commit_delay", "commit_siblings")
        settings = {n: await conn.fetchval(f"SHOW {n}") for n in shown}
        try:
            backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
            meters.postmaster = backend.parent()
        except psutil.Error:
            meters.postmaster = None  # PostgreSQL on another machine: no CPU figures
    finally:
        await conn.close()
    cache = "statement cache off, " if f"{PG_STATEMENT_CACHE_PARAM}=0" in database_url else ""
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC  PostgreSQL: {settings}, {clients} clients, "
        f"pool {pool_size}, {cache}{seconds:.0f} s per scenario"
    )
    pool = await open_pg_pool(database_url, min_size=pool_size, max_size=pool_size)

    # Every connection of the pool, held at once, gets the statement counter.
    held = [await pool.acquire() for _ in range(pool_size)]
    for connection in held:
        connection.add_query_logger(meters.count)
    for connection in held:
        await pool.release(connection)
    run_id = random.randrange(10**6)
    try:
        await ledger.load_catalog(pool)
        people = [f"+7917{run_id % 1000:03d}{n:04d}" for n in range(2 * clients)]

        async def join(number: str) -> None:
            await ledger.enroll(pool, number, key=f"bench-{run_id}-e-{number}")
            await ledger.accrue(pool, number, POINTS_EACH, key=f"bench-{run_id}-a-{number}")

        await asyncio.gather(*(join(n) for n in people))
        ctx: dict[str, Any] = {"settings": BENCH_SETTINGS}
        figures = []

        def gift_to_other(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            # Client c sends from its own subscriber to the second half, round robin.
            sender, recipient = people[c], people[clients + (c + i) % clients]
            return ledger.gift(
                pool, sender, recipient, GIFT_POINTS, key=f"bench-{run_id}-g-{c}-{i}", **ctx
            )

        def accept(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.accept_gift(
                pool, people[clients + c], key=f"bench-{run_id}-acc-{c}-{i}", **ctx
            )

        pair = people[:2]

        def crossing(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            sender, recipient = (pair[0], pair[1]) if (c + i) % 2 else (pair[1], pair[0])
            return ledger.gift(
                pool, sender, recipient, GIFT_POINTS, key=f"bench-{run_id}-x-{c}-{i}", **ctx
            )

        def redeem(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.redeem(pool, people[c], REWARD, key=f"bench-{run_id}-r-{c}-{i}", **ctx)

        def redeem_dev(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.redeem(
                pool, people[c], REWARD, key=f"bench-{run_id}-rd-{c}-{i}", settings=DEV_SETTINGS
            )

        def balance(c: int, _: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.balance(pool, people[c], **ctx)

        table: dict[str, tuple[str, Callable[[int, int], Awaitable[ledger.Outcome[Any]]]]] = {
            "gift": ("gift (own sender each)", gift_to_other),
            "accept": ("accept_gift (oldest pending, until none)", accept),
            "crossing": ("gift (2 subscribers crossing, hot)", crossing),
            "redeem": ("redeem (reserve only)", redeem),
            "redeem_dev": ("redeem + dev fulfilment (2 tx)", redeem_dev),
            "balance": ("balance (read)", balance),
        }
        for name in scenarios:
            title, call = table[name]
            figures.append(
                await _drive(title, clients, seconds, call, meters, until_refused=name == "accept")
            )
            print(figures[-1].line(), flush=True)

        check_started = time.perf_counter()
        violations = await ledger.check(pool)
        check_s = time.perf_counter() - check_started
        postings = await pool.fetchval("SELECT count(*) FROM postings")
    finally:
        await pool.close()
    print(f"ledger check: {len(violations)} violations over {postings} postings in {check_s:.2f} s")
    for violation in violations[:20]:
        print(f"  {violation}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pool", type=int, default=None, help="pool size (default: --clients)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the embedded PostgreSQL (ALTER SYSTEM, reloaded), e.g. commit_delay=20",
    )
    parser.add_argument(
        "--no-statement-cache",
        action="store_true",
        help="statement_cache_size=0, as behind PgBouncer in transaction mode",
    )
    args = parser.parse_args()
    scenarios = tuple(name for name in args.scenarios.split(",") if name)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    url = os.environ.get("DATABASE_URL")
    if url:
        asyncio.run(run(url, args.clients, args.seconds, pool_size=args.pool, scenarios=scenarios))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    servers = EmbeddedServers(data_dir, durable=True)
    try:
        database_url = servers.start().database_url
        if args.pg_setting:
            asyncio.run(_configure(database_url, args.pg_setting))
        if args.no_statement_cache:
            database_url += f"&{PG_STATEMENT_CACHE_PARAM}=0"
        asyncio.run(
            run(database_url, args.clients, args.seconds, pool_size=args.pool,
                scenarios=scenarios)
        )  # fmt: skip
    finally:
        servers.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _configure(database_url: str, settings: list[str]) -> None:
    """Apply ``NAME=VALUE`` settings to the benchmark's own PostgreSQL (never fsync off)."""
    conn = await asyncpg.connect(database_url)
    try:
        for item in settings:
            name, _, value = item.partition("=")
            if not name.replace("_", "").isalnum():
                raise SystemExit(f"not a setting name: {name!r}")
            if name in ("fsync", "synchronous_commit") and value != "on":
                raise SystemExit(f"{name} stays on: the benchmark measures durable commits")
            await conn.execute(f"ALTER SYSTEM SET {name} = {_literal(value)}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


if __name__ == "__main__":
    main()
