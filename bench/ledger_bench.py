"""Ledger throughput: gifts, accepts and redemptions per second with N concurrent clients.

    .venv/bin/python -m bench.ledger_bench [--clients 16] [--seconds 10]

Without ``DATABASE_URL`` it starts its own durable PostgreSQL (fsync on,
synchronous commit) in a temporary directory, as production would run; with
it, it migrates that database and works with numbers of its own. Each client
is one asyncio task calling the ledger functions directly (no HTTP), each call
one transaction. ``ledger check`` runs at the end.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

import ledger
from embedded_servers import EmbeddedServers
from ledger.migrations import migrate

POINTS_EACH = 10_000_000
GIFT_POINTS = 10
REWARD = "sms-50"
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

    def line(self) -> str:
        rate = self.ok / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        p95 = lat[int(len(lat) * 0.95) - 1 if len(lat) > 1 else 0] * 1000
        return (
            f"{self.name:<38} {rate:>9.0f}/s  ok={self.ok:<7} rejected={self.rejected:<5} "
            f"p50={p50:6.1f} ms  p95={p95:6.1f} ms"
        )


async def _drive(
    name: str,
    clients: int,
    seconds: float,
    call: Callable[[int, int], Awaitable[ledger.Outcome[Any]]],
) -> Figures:
    """Run ``call(client, i)`` in a loop on ``clients`` tasks for ``seconds``."""
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
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return Figures(name, ok, rejected, time.perf_counter() - started, latencies)


async def run(database_url: str, clients: int, seconds: float) -> list[Figures]:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        durability = {n: await conn.fetchval(f"SHOW {n}") for n in ("fsync", "synchronous_commit")}
    finally:
        await conn.close()
    print(f"PostgreSQL: {durability}, {clients} clients, {seconds:.0f} s per scenario")
    pool = await asyncpg.create_pool(database_url, min_size=clients, max_size=clients)
    assert pool is not None
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

        figures.append(await _drive("gift (own sender each)", clients, seconds, gift_to_other))

        def accept(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.accept_gift(
                pool, people[clients + c], key=f"bench-{run_id}-acc-{c}-{i}", **ctx
            )

        figures.append(await _drive("accept_gift (oldest pending)", clients, seconds, accept))

        pair = people[:2]

        def crossing(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            sender, recipient = (pair[0], pair[1]) if (c + i) % 2 else (pair[1], pair[0])
            return ledger.gift(
                pool, sender, recipient, GIFT_POINTS, key=f"bench-{run_id}-x-{c}-{i}", **ctx
            )

        figures.append(
            await _drive("gift (2 subscribers crossing, hot)", clients, seconds, crossing)
        )

        def redeem(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.redeem(pool, people[c], REWARD, key=f"bench-{run_id}-r-{c}-{i}", **ctx)

        figures.append(await _drive("redeem (reserve only)", clients, seconds, redeem))

        def redeem_dev(c: int, i: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.redeem(
                pool, people[c], REWARD, key=f"bench-{run_id}-rd-{c}-{i}", settings=DEV_SETTINGS
            )

        figures.append(await _drive("redeem + dev fulfilment (2 tx)", clients, seconds, redeem_dev))

        def balance(c: int, _: int) -> Awaitable[ledger.Outcome[Any]]:
            return ledger.balance(pool, people[c], **ctx)

        figures.append(await _drive("balance (read)", clients, seconds, balance))

        check_started = time.perf_counter()
        violations = await ledger.check(pool)
        check_s = time.perf_counter() - check_started
        postings = await pool.fetchval("SELECT count(*) FROM postings")
    finally:
        await pool.close()
    for fig in figures:
        print(fig.line())
    print(f"ledger check: {len(violations)} violations over {postings} postings in {check_s:.2f} s")
    for violation in violations[:20]:
        print(f"  {violation}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if url:
        asyncio.run(run(url, args.clients, args.seconds))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    servers = EmbeddedServers(data_dir, durable=True)
    try:
        urls = servers.start()
        asyncio.run(run(urls.database_url, args.clients, args.seconds))
    finally:
        servers.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
