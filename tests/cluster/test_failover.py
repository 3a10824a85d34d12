"""A master of the Redis Cluster dies mid-traffic; its replica takes over.

Sessions walk the menu (native USSD, hop ids given) on a cluster of their own
(3 masters, 3 replicas, ``--cluster-node-timeout 2000``) while one master is
killed with SIGKILL. Sessions on the other masters go on; those on the dead
master get the polite "try later" at worst, and go on from where they were
once the replica is master. No reply is a 5xx, nothing expires, nothing is
lost. The figures (failover time, answers per group, slowest hop) are printed
(``pytest -s``) and asserted with room for a loaded machine.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hops_harness import NativePhone, Reply, member, new_msisdn

from embedded_servers.redis_cluster import LocalRedisCluster
from ussd_service.config import Settings

MENU_FILE = Path(__file__).resolve().parents[2] / "menu_definitions.yaml"
SESSIONS = 24
HOP_PAUSE_S = 0.05
MAIN, BALANCE = "Бонусы", "Баланс:"
TRY_LATER = "Сервис временно недоступен"
EXPIRED = "Сессия истекла"
# With a 2 s node timeout a failover takes ~4 s; allow a loaded machine twice that.
FAILOVER_BOUND_S = 10.0
# The traffic goes on this long after the new master serves (its sessions must move on).
AFTER_S = 1.5


@pytest.fixture(scope="module")
def failover_cluster() -> Iterator[LocalRedisCluster]:
    """A cluster of this module alone: the test kills one of its masters."""
    data_dir = Path(tempfile.mkdtemp(prefix="ussd-failover-"))
    cluster = LocalRedisCluster(data_dir)  # Redis defaults: full coverage required
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def redis_client(
    failover_cluster: LocalRedisCluster,
) -> AsyncIterator[aioredis.RedisCluster]:
    client = aioredis.RedisCluster.from_url(failover_cluster.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(failover_cluster: LocalRedisCluster, database_url: str) -> Settings:
    return Settings(
        redis_url=failover_cluster.url, database_url=database_url, menu_file=MENU_FILE
    )


@dataclass
class Session:
    phone: NativePhone
    master: int = 0
    replies: list[tuple[float, Reply, float]] = field(default_factory=list)
    on_screen: str = MAIN

    async def step(self) -> None:
        started = time.monotonic()
        reply = await self.phone.send("1")
        self.replies.append((started, reply, time.monotonic() - started))
        if reply.status == 200 and TRY_LATER not in reply.text:
            self.on_screen = BALANCE if BALANCE in reply.text else MAIN


def _kind(reply: Reply) -> str:
    if reply.status != 200:
        return f"http {reply.status}"
    if TRY_LATER in reply.text:
        return "try later"
    if EXPIRED in reply.text:
        return "expired"
    if MAIN in reply.text or BALANCE in reply.text:
        return "screen"
    return f"other: {reply.text[:40]!r}"


async def _wait_replicated(cluster: LocalRedisCluster, master: int) -> None:
    """Until the master's replica has every write (loopback: well under a second)."""
    (replica,) = cluster.replica_of(master)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with cluster.client(master) as m, cluster.client(replica) as r:
            done = m.info("replication")["master_repl_offset"]
            if r.info("replication")["slave_repl_offset"] >= done:
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the replica did not catch up")


async def test_a_master_killed_mid_traffic_its_replica_takes_over_and_hops_go_on(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.RedisCluster,
    failover_cluster: LocalRedisCluster,
) -> None:
    cluster = failover_cluster
    sessions = []
    for _ in range(SESSIONS):
        caller = new_msisdn()
        await member(pg_pool, caller, 100)
        session = Session(NativePhone(client, caller))
        reply = await session.phone.begin()
        assert MAIN in reply.text, reply
        sessions.append(session)

    # Which master holds each session record (looked up where the keys are).
    masters = cluster.master_ports()
    owner: dict[str, int] = {}
    for port in masters:
        with cluster.client(port) as node:
            for key in node.scan_iter(match="ussd:s:*", count=1000):
                owner[key.decode().split(":")[-1].rstrip("}")] = port
    for session in sessions:
        session.master = owner[session.phone.session_id]
    victim = max(masters, key=lambda p: sum(s.master == p for s in sessions))
    (heir,) = cluster.replica_of(victim)
    survivor = next(p for p in masters if p != victim)
    on_victim = [s for s in sessions if s.master == victim]
    elsewhere = [s for s in sessions if s.master != victim]
    assert on_victim
    assert elsewhere
    await _wait_replicated(cluster, victim)

    stop = asyncio.Event()

    async def walk(session: Session) -> None:
        while not stop.is_set():
            await session.step()
            await asyncio.sleep(HOP_PAUSE_S)

    walkers = [asyncio.create_task(walk(s)) for s in sessions]
    await asyncio.sleep(0.5)
    killed_at = time.monotonic()
    cluster.kill(victim)
    promoted_at = None
    while time.monotonic() - killed_at < FAILOVER_BOUND_S:
        if heir in cluster.master_ports(via=survivor) and cluster.state_ok(survivor):
            promoted_at = time.monotonic()
            break
        await asyncio.sleep(0.05)
    assert promoted_at is not None, "the replica did not take over"
    await asyncio.sleep(AFTER_S)
    stop.set()
    await asyncio.gather(*walkers)

    def summary(group: list[Session]) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for s in group:
            for _, reply, _ in s.replies:
                kinds[_kind(reply)] = kinds.get(_kind(reply), 0) + 1
        return kinds

    failover_s = promoted_at - killed_at
    victim_kinds, other_kinds = summary(on_victim), summary(elsewhere)
    slowest = max(elapsed for s in sessions for _, _, elapsed in s.replies)
    after = [
        started - killed_at
        for s in on_victim
        for started, reply, _ in s.replies
        if started > killed_at and _kind(reply) == "screen"
    ]
    # The first hop on the dead master's sessions that was answered after the kill.
    back_s = min((t for t in after if t > 0), default=float("nan"))
    print(
        f"\nfailover: replica master and cluster_state:ok {failover_s:.2f} s after SIGKILL; "
        f"sessions on the dead master ({len(on_victim)}): {victim_kinds}; "
        f"on the others ({len(elsewhere)}): {other_kinds}; "
        f"first screen again on the dead master's sessions {back_s:.2f} s after the kill; "
        f"slowest hop {slowest:.2f} s"
    )

    assert failover_s < FAILOVER_BOUND_S
    # Never a 5xx, never an expired session, never anything but a screen or "try later".
    assert set(victim_kinds) <= {"screen", "try later"}, victim_kinds
    assert set(other_kinds) <= {"screen", "try later"}, other_kinds
    # Sessions on the other masters go on, untouched (the client's retries bridge
    # the moment the cluster says CLUSTERDOWN, before the replica is promoted).
    refused = [
        (s.phone.session_id, round(started - killed_at, 2))
        for s in elsewhere
        for started, reply, _ in s.replies
        if _kind(reply) != "screen"
    ]
    assert refused == [], (other_kinds, refused)
    assert other_kinds.get("screen", 0) > len(elsewhere) * 5
    # Every session moves on after the failover, from where it was.
    for s in sessions:
        _, last, _ = s.replies[-1]
        assert _kind(last) == "screen", (s.master, last)
    for s in on_victim:
        later = [r for started, r, _ in s.replies if started > promoted_at]
        assert any(_kind(r) == "screen" for r in later), s.replies[-3:]
