"""Drop-off counters in daily Redis buckets; time is passed in, never slept."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from session_store import RedisClient, StoreUnavailableError
from session_store.dropoff import (
    DropoffBuffer,
    DropoffEvent,
    DropoffKind,
    NodeCounts,
    NodeKey,
    RedisDropoffCounters,
)
from session_store.settings import DROPOFF_RETENTION

V = "2024-05-01.1"
TODAY = datetime.now(UTC).date()
TOMORROW = TODAY + timedelta(days=1)


def at(day: date, hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss, us), tzinfo=UTC)


def entry(node: str, version: str = V) -> DropoffEvent:
    return DropoffEvent(version, node, DropoffKind.ENTRY)


def exit_to(node: str, target: str) -> DropoffEvent:
    return DropoffEvent(V, node, DropoffKind.EXIT, target)


def kind(node: str, k: DropoffKind) -> DropoffEvent:
    return DropoffEvent(V, node, k)


@pytest.fixture
def counters(any_redis: RedisClient) -> RedisDropoffCounters:
    return RedisDropoffCounters(any_redis)


async def test_counts_fall_into_the_utc_day_they_happened(
    counters: RedisDropoffCounters,
) -> None:
    await counters.record([entry("main"), exit_to("main", "gifts")], at(TODAY, 23, 59, 59, 999999))
    await counters.record([entry("main"), kind("main", DropoffKind.ABANDON)], at(TOMORROW, 0))
    # 01:30 at UTC+3 on "tomorrow" is 22:30 UTC today.
    plus3 = datetime.combine(TOMORROW, time(1, 30), tzinfo=timezone(timedelta(hours=3)))
    await counters.record([entry("main")], plus3)

    main = NodeKey(V, "main")
    today = await counters.read(TODAY, TODAY)
    assert today == {main: NodeCounts(entries=2, exits={"gifts": 1})}
    tomorrow = await counters.read(TOMORROW, TOMORROW + timedelta(days=3))
    assert tomorrow == {main: NodeCounts(entries=1, abandons=1)}
    both = await counters.read(TODAY - timedelta(days=1), TOMORROW)
    assert both == {main: NodeCounts(entries=3, exits={"gifts": 1}, abandons=1)}
    per_day = await counters.read_days(TODAY - timedelta(days=1), TOMORROW)
    assert sorted(per_day) == [TODAY, TOMORROW]


async def test_every_kind_and_exit_target_is_counted(counters: RedisDropoffCounters) -> None:
    events = [
        entry("gift"),
        entry("gift"),
        entry("gift"),
        entry("gift"),
        entry("gift"),
        exit_to("gift", "gift_amount"),
        exit_to("gift", "main"),
        exit_to("gift", "main"),
        kind("gift", DropoffKind.INVALID),
        kind("gift", DropoffKind.INVALID),
        kind("gift", DropoffKind.TIMEOUT),
        kind("gift", DropoffKind.HANDOFF),
        kind("gift", DropoffKind.COMPLETE),
    ]
    await counters.record(events, at(TODAY, 12))
    counts = (await counters.read(TODAY, TODAY))[NodeKey(V, "gift")]
    assert counts == NodeCounts(
        entries=5,
        exits={"gift_amount": 1, "main": 2},
        invalid=2,
        timeouts=1,
        handoffs=1,
        completions=1,
    )
    assert counts.exited == 3
    assert counts.unaccounted == 0  # 5 entries: 3 exits, 1 handoff, 1 completion


async def test_unaccounted_entries_are_silent_drops(counters: RedisDropoffCounters) -> None:
    await counters.record([entry("pin")] * 4 + [exit_to("pin", "done")], at(TODAY, 9))
    counts = (await counters.read(TODAY, TODAY))[NodeKey(V, "pin")]
    assert counts.unaccounted == 3


async def test_menu_versions_are_kept_apart_and_filterable(
    counters: RedisDropoffCounters,
) -> None:
    await counters.record(
        [entry("main", "v1"), entry("main", "v2"), entry("main", "v2")], at(TODAY, 8)
    )
    everything = await counters.read(TODAY, TODAY)
    assert everything == {
        NodeKey("v1", "main"): NodeCounts(entries=1),
        NodeKey("v2", "main"): NodeCounts(entries=2),
    }
    assert await counters.read(TODAY, TODAY, menu_version="v2") == {
        NodeKey("v2", "main"): NodeCounts(entries=2)
    }
    assert await counters.read(TODAY, TODAY, menu_version="v3") == {}


async def test_buckets_expire_after_the_retention(
    counters: RedisDropoffCounters, any_redis: RedisClient
) -> None:
    await counters.record([entry("main")], at(TODAY, 0, 0, 1))
    await counters.record([entry("main")], at(TODAY, 23))  # same deadline, not pushed back
    expected = at(TOMORROW, 0) + DROPOFF_RETENTION - datetime.now(UTC)
    ttl = await any_redis.ttl(counters.key(TODAY))
    assert abs(ttl - expected.total_seconds()) < 5
    # A day already past its retention is not kept at all.
    old = TODAY - DROPOFF_RETENTION - timedelta(days=2)
    await counters.record([entry("main")], at(old, 12))
    assert await counters.read(old, old) == {}


async def test_bad_events_and_ranges_are_refused(counters: RedisDropoffCounters) -> None:
    with pytest.raises(ValueError, match="target"):
        DropoffEvent(V, "main", DropoffKind.EXIT).field()
    with pytest.raises(ValueError, match="target"):
        DropoffEvent(V, "main", DropoffKind.ENTRY, "x").field()
    with pytest.raises(ValueError, match=r"\|"):
        entry("a|b").field()
    with pytest.raises(ValueError, match="timezone"):
        await counters.record([entry("main")], datetime(2024, 5, 1, 12))
    with pytest.raises(ValueError, match="range"):
        await counters.read(TOMORROW, TODAY)


async def test_buffer_writes_nothing_until_flushed_then_everything_once(
    counters: RedisDropoffCounters, any_redis: RedisClient
) -> None:
    clock = [at(TODAY, 23, 59, 59)]
    buffer = DropoffBuffer(counters, clock=lambda: clock[0])
    buffer.record([entry("main"), exit_to("main", "gifts")])
    clock[0] = at(TOMORROW, 0, 0, 1)
    buffer.record([entry("main")])
    buffer.record([entry("main")], at=at(TODAY, 10))
    assert buffer.pending == 4
    # One EXISTS per key: on a cluster the two days are in different slots.
    assert await any_redis.exists(counters.key(TODAY)) == 0
    assert await any_redis.exists(counters.key(TOMORROW)) == 0
    assert await buffer.flush() == 4
    assert buffer.pending == 0
    assert await buffer.flush() == 0
    assert await counters.read(TODAY, TODAY) == {
        NodeKey(V, "main"): NodeCounts(entries=2, exits={"gifts": 1})
    }
    assert await counters.read(TOMORROW, TOMORROW) == {NodeKey(V, "main"): NodeCounts(entries=1)}


async def test_buffer_context_flushes_on_exit(counters: RedisDropoffCounters) -> None:
    async with DropoffBuffer(counters, interval=timedelta(hours=1)) as buffer:
        buffer.record([entry("main")], at=at(TODAY, 7))
        assert buffer.pending == 1
    assert buffer.pending == 0
    assert await counters.read(TODAY, TODAY) == {NodeKey(V, "main"): NodeCounts(entries=1)}


async def test_a_failed_flush_keeps_the_counts() -> None:
    client = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        buffer = DropoffBuffer(RedisDropoffCounters(client))
        buffer.record([entry("main"), entry("main")], at=at(TODAY, 7))
        with pytest.raises(StoreUnavailableError):
            await buffer.flush()
        assert buffer.pending == 2
    finally:
        await client.aclose()


async def test_a_scripted_load_reads_back_exactly(counters: RedisDropoffCounters) -> None:
    """A few hundred sessions with known outcomes, counted through the buffer."""
    rng = random.Random(7)
    buffer = DropoffBuffer(counters)
    expected: dict[NodeKey, NodeCounts] = {}

    def count(event: DropoffEvent, day: date) -> None:
        buffer.record([event], at=at(day, rng.randrange(24)))
        target = expected.setdefault(NodeKey(event.menu_version, event.node), NodeCounts())
        target.add(event.kind, event.target, 1)

    path = ["main", "gifts", "gift_to", "gift_amount", "gift_confirm"]
    for _ in range(300):
        day = rng.choice([TODAY, TOMORROW])
        depth = rng.randrange(1, len(path) + 1)
        for i, node in enumerate(path[:depth]):
            count(entry(node), day)
            if rng.random() < 0.2:
                count(kind(node, DropoffKind.INVALID), day)
            if i + 1 < depth:
                count(exit_to(node, path[i + 1]), day)
        last = path[depth - 1]
        outcome = rng.choice([DropoffKind.ABANDON, DropoffKind.HANDOFF, DropoffKind.COMPLETE])
        count(kind(last, outcome), day)
    await buffer.flush()
    assert await counters.read(TODAY, TOMORROW) == expected
    assert sum(c.entries for c in expected.values()) > 300
