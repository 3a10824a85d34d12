"""Subscribers for a run: enrolled, given points, some with gifts waiting.

Enrolment and accruals go through the operator API (``POST
/v1/subscribers/{msisdn}/enrollment``, ``POST /v1/accruals``) when the service
has it, else through the ``ledger`` functions against the service's
database. Pending gifts (for the accept flow) and the catalogue always go
through ``ledger`` (there is no API for them).

Numbers are Moscow mobile numbers ``+7916NNNNNNN``: senders per virtual user,
acceptors per virtual user, and seeders who send the pending gifts.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import asyncpg

import ledger

SENDERS_PER_USER = 4
ACCEPTORS_PER_USER = 4
SENDER_POINTS = 1_000_000
GIFT_POINTS = 10
SEEDER_GIFTS = 1_500  # below the ledger's daily cap of 20,000 points at 10 points each
SEED_CONCURRENCY = 16
ACCEPTOR_BASE = 5_000_000
SEEDER_BASE = 9_000_000


def number(n: int) -> str:
    return f"+7916{n:07d}"


@dataclass(frozen=True)
class Population:
    """The subscribers of a run, as load-generator user contexts."""

    users: list[dict[str, Any]]
    seeders: list[str]
    pending_per_acceptor: int

    @property
    def senders(self) -> list[str]:
        return [m for u in self.users for m in u["msisdns"]]

    @property
    def acceptors(self) -> list[str]:
        return [m for u in self.users for m in u["acceptors"]]


def population(users: int, pending_per_acceptor: int) -> Population:
    contexts = []
    for uid in range(users):
        senders = [number(uid * 100 + k) for k in range(SENDERS_PER_USER)]
        acceptors = [number(ACCEPTOR_BASE + uid * 100 + k) for k in range(ACCEPTORS_PER_USER)]
        contexts.append({"msisdns": senders, "acceptors": acceptors})
    for uid, context in enumerate(contexts):
        # Gifts go to the next user's acceptors: another subscriber, never oneself.
        context["recipients"] = contexts[(uid + 1) % len(contexts)]["acceptors"]
        context["pending_per_acceptor"] = pending_per_acceptor
    total = users * ACCEPTORS_PER_USER * pending_per_acceptor
    seeders = [number(SEEDER_BASE + j) for j in range(max(1, math.ceil(total / SEEDER_GIFTS)))]
    return Population(contexts, seeders, pending_per_acceptor)


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def _api_available(service_url: str, msisdn: str) -> bool:
    path = f"{service_url}/v1/subscribers/{msisdn}/enrollment"
    status = await asyncio.to_thread(_post, path, {})
    return status < 300


async def seed(
    database_url: str, service_url: str, people: Population, *, use_api: bool = True
) -> dict[str, Any]:
    """Enrol and credit everyone, load the catalogue, send the pending gifts."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=SEED_CONCURRENCY)
    assert pool is not None
    limit = asyncio.Semaphore(SEED_CONCURRENCY)
    everyone = [*people.senders, *people.acceptors, *people.seeders]
    via_api = use_api and await _api_available(service_url, everyone[0])

    async def join(msisdn: str, points: int) -> None:
        async with limit:
            if via_api:
                path = f"{service_url}/v1/subscribers/{msisdn}/enrollment"
                enrolled = await asyncio.to_thread(_post, path, {})
                body = {
                    "msisdn": msisdn,
                    "points": points,
                    "reason": "bench",
                    "idempotency_key": f"bench-accrue-{msisdn}",
                }
                credited = await asyncio.to_thread(_post, f"{service_url}/v1/accruals", body)
                if enrolled >= 300 or credited >= 300:
                    raise RuntimeError(f"API seeding failed: {enrolled}, {credited}")
                return
            outcome = await ledger.enroll(pool, msisdn, key=f"bench-enroll-{msisdn}")
            if outcome.code.value not in ("ok", "already_enrolled"):
                raise RuntimeError(f"enroll: {outcome.code}")
            accrual = await ledger.accrue(pool, msisdn, points, key=f"bench-accrue-{msisdn}")
            if not accrual.ok:
                raise RuntimeError(f"accrue: {accrual.code}")

    async def send(seeder: str, acceptor: str, index: int) -> None:
        async with limit:
            key = f"bench-gift-{acceptor}-{index}"
            outcome = await ledger.gift(pool, seeder, acceptor, GIFT_POINTS, key=key)
            if not outcome.ok:
                raise RuntimeError(f"seed gift: {outcome.code}")

    try:
        catalogue = await ledger.load_catalog(pool)
        await asyncio.gather(*(join(m, SENDER_POINTS) for m in people.senders))
        await asyncio.gather(*(join(m, 1) for m in people.acceptors))
        await asyncio.gather(*(join(m, SEEDER_GIFTS * GIFT_POINTS) for m in people.seeders))
        jobs = [
            (acceptor, index)
            for index in range(people.pending_per_acceptor)
            for acceptor in people.acceptors
        ]
        await asyncio.gather(
            *(
                send(people.seeders[n // SEEDER_GIFTS], acceptor, index)
                for n, (acceptor, index) in enumerate(jobs)
            )
        )
        async with pool.acquire() as conn:
            settings = {
                name: await conn.fetchval(f"SHOW {name}")
                for name in ("fsync", "synchronous_commit", "full_page_writes")
            }
    finally:
        await pool.close()
    return {
        "via": "api" if via_api else "ledger",
        "subscribers": len(everyone),
        "pending_gifts": len(jobs),
        "catalogue": catalogue.loaded,
        "postgres": settings,
    }


async def ledger_check(database_url: str) -> list[str]:
    """``ledger.check`` after the run: every violated invariant (empty = clean)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        return [f"{v.invariant}: {v.detail}" for v in await ledger.check(pool)]
    finally:
        await pool.close()
