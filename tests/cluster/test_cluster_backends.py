"""What the service keeps in Redis, on a Redis Cluster: the client, readiness, every key family.

``REDIS_URL`` at any node (a master or a replica) gives the cluster client;
readiness writes and reads a key through it; the SMS reply cache, delivery
records, deferred handoffs, drop-off counters and the designers' report work
across the masters, and a session costs one command to load and one to save,
on its own master.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp.test_utils import TestClient
from hops_harness import AfricasTalkingPhone, NativePhone, member, new_msisdn
from redis.asyncio.cluster import ClusterPipeline
from redis.crc import key_slot

import ledger
from embedded_servers.redis_cluster import LocalRedisCluster
from session_store import RedisSessionStore, SessionRecord, SessionRef
from session_store.dropoff import DropoffEvent, DropoffKind, RedisDropoffCounters
from session_store.keys import session_key
from session_store.redis_client import closed_under_the_command
from session_store.settings import KEY_PREFIX
from ussd_service import handoffs
from ussd_service.backends import open_redis, redis_is_cluster
from ussd_service.deliveries import delivery_records, keep_delivery
from ussd_service.health import NotReadyError, ready_key, redis_probe

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("ussd-service"))


CLIENT_COMMANDS = {"hgetall", "evalsha", "eval", "script", "get", "set", "getdel", "del"}


def _record(ref: SessionRef) -> SessionRecord:
    return SessionRecord(ref=ref, menu_version="v1", node="main", state="{}", last_reply="hi")


async def _keys_per_master(cluster: LocalRedisCluster, pattern: str) -> dict[int, int]:
    counts = {}
    for port in cluster.master_ports():
        with cluster.client(port) as node:
            counts[port] = sum(1 for _ in node.scan_iter(match=pattern, count=1000))
    return counts


# -- the client ---------------------------------------------------------------------


async def test_any_node_url_gives_the_cluster_client(
    redis_cluster: LocalRedisCluster, servers: Any, unused_tcp_port: int
) -> None:
    master = redis_cluster.master_ports()[0]
    (replica,) = redis_cluster.replica_of(master)
    for port in (master, replica):
        url = redis_cluster.node_url(port)
        assert await redis_is_cluster(url) is True
        client = await open_redis(url)
        try:
            assert isinstance(client, aioredis.RedisCluster)
            # Keys on every master answer through it, whichever node the URL named.
            for n in range(30):
                await client.set(f"probe:{{{n}}}", n, px=10_000)
                assert await client.get(f"probe:{{{n}}}") == str(n).encode()
        finally:
            await client.aclose()
    # The embedded server (a Unix socket) is standalone without a probe.
    assert await redis_is_cluster(servers.redis_url) is False
    standalone = await open_redis(servers.redis_url)
    try:
        assert isinstance(standalone, aioredis.Redis)
    finally:
        await standalone.aclose()
    # Nobody there: the mode is unknown, said once, and the standalone client is used.
    closed = f"redis://127.0.0.1:{unused_tcp_port}/0"
    with structlog.testing.capture_logs() as logs:
        assert await redis_is_cluster(closed) is None
        fallback = await open_redis(closed)
    try:
        assert isinstance(fallback, aioredis.Redis)
    finally:
        await fallback.aclose()
    assert [e["event"] for e in logs] == ["redis_mode_unknown", "redis_mode_unknown"]


async def test_readiness_writes_and_reads_a_key_through_the_cluster(
    client: TestClient, redis_client: aioredis.RedisCluster
) -> None:
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"]["redis"] == "ok"
    assert body["redis_mode"] == "cluster"
    # The probe key is this process's, hash-tagged, and expires.
    key = ready_key()
    assert key.endswith(f":{os.getpid()}}}")
    assert 0 < await redis_client.pttl(key) <= 60_000


async def test_a_standalone_client_on_a_cluster_node_is_not_ready(
    redis_cluster: LocalRedisCluster,
) -> None:
    """A service that started while the cluster was down chose the standalone client."""
    wrong = aioredis.Redis.from_url(redis_cluster.url)
    try:
        with pytest.raises(NotReadyError, match="Redis Cluster node"):
            await redis_probe(wrong)
    finally:
        await wrong.aclose()


async def test_a_connection_closed_under_a_write_is_recognised_as_redis_own_race() -> None:
    # What the failover test met: redis-py writing on a connection closed meanwhile.
    closed = aioredis.Connection()
    with pytest.raises(AttributeError) as caught:
        await closed._send_packed_command([b"PING\r\n"])
    assert closed_under_the_command(caught.value)

    class Ours:
        _writer = None

        def send(self) -> None:
            self._writer.writelines([b"PING"])  # type: ignore[attr-defined]

    # The same error raised in our code is a bug of ours, and stays one.
    with pytest.raises(AttributeError) as caught:
        Ours().send()
    assert not closed_under_the_command(caught.value)


async def test_a_store_command_whose_connection_was_closed_under_it_is_sent_again() -> None:
    class Flaky:
        calls = 0

        def register_script(self, script: str) -> None:
            return None

        async def hgetall(self, key: str) -> dict[bytes, bytes]:
            self.calls += 1
            if self.calls == 1:  # nothing reached the server
                await aioredis.Connection()._send_packed_command([b"HGETALL"])
            return {}

    flaky = Flaky()
    store = RedisSessionStore(flaky)  # type: ignore[arg-type]
    assert await store.load(SessionRef("ussd", "at", "x")) is None
    assert flaky.calls == 2


async def test_a_dropoff_flush_whose_connection_was_closed_under_it_is_sent_again() -> None:
    """What the failover test's teardown met once: the app's last drop-off flush
    on a connection the cluster client closed; the counts are written once."""
    sent: list[list[Any]] = []

    class Flaky:
        def register_script(self, script: str) -> Any:
            async def increment(*, keys: list[str], args: list[Any]) -> None:
                if not sent:
                    sent.append([])  # the first send never leaves
                    await aioredis.Connection()._send_packed_command([b"EVALSHA"])
                sent.append([*keys, *args])

            return increment

    counters = RedisDropoffCounters(Flaky())  # type: ignore[arg-type]
    event = DropoffEvent("v1", "main", DropoffKind.ENTRY)
    await counters.record([event], datetime(2026, 11, 30, tzinfo=UTC))
    assert len(sent) == 2
    assert sent[1][-2:] == [event.field(), 1]


# -- sessions ------------------------------------------------------------------------


async def test_sessions_spread_over_every_master_and_stay_whole(
    redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster
) -> None:
    store = RedisSessionStore(redis_client)
    refs = [SessionRef("ussd", "africastalking", f"ATUid_{n:04d}") for n in range(300)]
    for ref in refs:
        assert (await store.create(_record(ref))).saved
    counts = await _keys_per_master(redis_cluster, "ussd:s:*")
    assert sum(counts.values()) == len(refs)
    assert min(counts.values()) > len(refs) / 5, counts
    for ref in refs[:20]:
        loaded = await store.load(ref)
        assert loaded is not None
        assert (await store.save(dataclasses.replace(loaded, node="n"), loaded.version)).saved


async def test_a_hop_is_one_command_to_load_and_one_to_save_on_its_own_master(
    redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster
) -> None:
    store = RedisSessionStore(redis_client)
    ref = SessionRef("ussd", "africastalking", "round-trips")
    assert (await store.create(_record(ref))).saved  # the script is loaded there now
    home = redis_client.get_node_from_key(session_key(KEY_PREFIX, ref)).port
    nodes = [redis_cluster.client(p) for p in redis_cluster.pids]
    try:
        for node in nodes:
            node.config_resetstat()
        loaded = await store.load(ref)
        assert loaded is not None
        assert (await store.save(dataclasses.replace(loaded, node="n"), loaded.version)).saved
        calls: dict[int, dict[str, int]] = {}
        for node in nodes:
            stats = node.info("commandstats")
            port = node.connection_pool.connection_kwargs["port"]
            calls[port] = {
                name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in stats.items()
                if name.removeprefix("cmdstat_") in CLIENT_COMMANDS
            }
    finally:
        for node in nodes:
            node.close()
    # Commands a client sends (the script's own HSET etc. are counted too, and a
    # replica counts what it is sent to replicate: those are left out).
    assert calls.pop(home) == {"hgetall": 1, "evalsha": 1}
    assert all(not c for c in calls.values()), calls


async def test_the_save_script_is_loaded_again_after_a_script_flush(
    redis_client: aioredis.RedisCluster,
) -> None:
    """A promoted replica may not have the script: EVALSHA, NOSCRIPT, SCRIPT LOAD, again."""
    store = RedisSessionStore(redis_client)
    ref = SessionRef("ivr", "twilio", "CA-noscript")
    assert (await store.create(_record(ref))).saved
    await redis_client.script_flush()  # every master
    loaded = await store.load(ref)
    assert loaded is not None
    assert (await store.save(dataclasses.replace(loaded, node="n"), loaded.version)).saved


# -- everything else the service keeps in Redis ----------------------------------------


async def test_sms_redeliveries_get_the_first_reply_from_the_cluster(
    client: TestClient, pg_pool: asyncpg.Pool, redis_cluster: LocalRedisCluster
) -> None:
    senders = [new_msisdn() for _ in range(12)]
    for sender in senders:
        await member(pg_pool, sender, 250)
    first = {}
    for n, sender in enumerate(senders):
        resp = await client.post(
            "/sms/inbound", data={"from": sender, "to": "4555", "text": "БАЛАНС", "id": f"m{n}"}
        )
        first[sender] = await resp.text()
        assert first[sender].startswith("Баланс: 250"), first[sender]
    # The kept replies landed on more than one master.
    counts = await _keys_per_master(redis_cluster, "sms:reply:*")
    assert sum(counts.values()) == len(senders)
    assert sum(1 for c in counts.values() if c) > 1, counts
    for sender in senders:
        await ledger.accrue(pg_pool, sender, 50, key=f"more-{sender}")
    for n, sender in enumerate(senders):
        resp = await client.post(
            "/sms/inbound", data={"from": sender, "to": "4555", "text": "БАЛАНС", "id": f"m{n}"}
        )
        assert await resp.text() == first[sender]


async def test_delivery_records_across_slots(redis_client: aioredis.RedisCluster) -> None:
    at = datetime.now(UTC)
    ids = list(range(1, 41))
    for message_id in ids[::2]:
        await keep_delivery(redis_client, message_id, via="log", text=f"t{message_id}", at=at)
    records = await delivery_records(redis_client, ids)
    assert sorted(records) == ids[::2]
    assert records[5] == {"via": "log", "text": "t5", "at": at.isoformat()}


async def test_deferred_handoffs_flushed_by_two_workers_at_once_are_all_written_once(
    redis_client: aioredis.RedisCluster, pg_pool: asyncpg.Pool
) -> None:
    requests = [
        handoffs.HandoffRequest(
            key=f"ussd:native:s{n}:operator",
            msisdn=new_msisdn(),
            channel="ussd",
            language="ru",
            reason="operator",
            breadcrumb=["main", "operator"],
        )
        for n in range(30)
    ]
    for request in requests:
        await handoffs.defer_handoff(redis_client, request)
    written = await asyncio.gather(
        handoffs.flush_deferred(redis_client, pg_pool),
        handoffs.flush_deferred(redis_client, pg_pool),
    )
    assert sum(written) >= len(requests)  # one may write an entry the other wrote too
    assert await redis_client.llen(handoffs.PENDING_KEY) == 0
    keys = {r["handoff_key"] for r in await pg_pool.fetch("SELECT handoff_key FROM handoffs")}
    assert keys == {r.key for r in requests}


async def test_dropoff_counters_reach_the_designers_report_on_the_cluster(
    redis_cluster: LocalRedisCluster, redis_client: aioredis.RedisCluster, database_url: str
) -> None:
    counters = RedisDropoffCounters(redis_client)
    now = datetime.now(UTC)
    await counters.record([DropoffEvent("v1", "main", DropoffKind.ENTRY)] * 7, now)
    await counters.record([DropoffEvent("v1", "main", DropoffKind.ABANDON)] * 2, now)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_cluster.url}
    env["DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "report",
        "--since",
        now.date().isoformat(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    (row,) = [line.split() for line in out.decode().splitlines() if line.startswith("main ")]
    # entries, invalid, timeouts, abandons, handoffs, completed, open, abandon %
    assert row[1:9] == ["7", "0", "0", "2", "0", "0", "5", "28.6"], out.decode()



async def test_hops_send_no_cluster_pipeline(
    client: TestClient, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py's cluster pipeline (and delete(), built on it) closes every connection of
    the client when it retries a node that went down: the hop path must not use it."""
    pipelines = []
    original = ClusterPipeline.execute

    async def counted(self: ClusterPipeline, *args: Any, **kwargs: Any) -> Any:
        pipelines.append(len(self))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ClusterPipeline, "execute", counted)
    caller = new_msisdn()
    await member(pg_pool, caller, 100)
    for phone in (AfricasTalkingPhone(client, caller), NativePhone(client, caller)):
        for key in ("", "1", "1", "4"):  # begin, balance, back, gift (a resume pointer)
            reply = await (phone.begin() if not key else phone.send(key))
            assert reply.status == 200
            assert "недоступен" not in reply.text, reply.text
        await phone.drop()
    assert pipelines == []


async def test_a_subscribers_session_and_resume_pointer_share_one_slot(
    client: TestClient, pg_pool: asyncpg.Pool, redis_client: aioredis.RedisCluster
) -> None:
    """The session key carries its subscriber's tag, so the save script sets
    the pointer on the same master and a redial's first read takes it."""
    caller = new_msisdn()
    await member(pg_pool, caller, 1000)
    phone = AfricasTalkingPhone(client, caller)  # a gateway that never reports drops
    assert "Бонусы" in (await phone.begin()).text
    assert "Номер получателя" in (await phone.send("4")).text
    session_keys = [k async for k in redis_client.scan_iter(match=f"ussd:s:{{ussd:{caller}}}:*")]
    pointer_keys = [k async for k in redis_client.scan_iter(match=f"ussd:resume:{{ussd:{caller}}}")]
    assert len(session_keys) == 1
    assert len(pointer_keys) == 1, "the save script left the redial offer"
    assert key_slot(session_keys[0]) == key_slot(pointer_keys[0])
    redial = AfricasTalkingPhone(client, caller)
    assert "продолжить" in (await redial.begin()).text.lower()
    assert not [k async for k in redis_client.scan_iter(match=f"ussd:resume:{{ussd:{caller}}}")]
