"""What only the Redis backend promises: key slots, record size, round trips."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from session_store import (
    RedisSessionStore,
    SessionRecord,
    SessionRef,
    StoreSettings,
    StoreUnavailableError,
)
from session_store.keys import resume_key, session_key, session_keys
from session_store.settings import KEY_PREFIX, TYPICAL_RECORD_MAX_BYTES

REPLY = ("Баланс: 1 250 баллов.\n1 Подарить\n2 Обменять\n0 Оператор\n" * 4)[:180]
# What the engine keeps for a subscriber a few screens deep into a gift.
STATE = (
    '{"lang":"ru","vars":{"to":"+79990001122","amount":"150"},'
    '"fails":{"gift_amount":1},"crumbs":["main","gifts","gift_to","gift_amount"]}'
)


def typical(ref: SessionRef) -> SessionRecord:
    return SessionRecord(
        ref=ref,
        menu_version="2024-05-01.1",
        node="gift_confirm",
        state=STATE,
        last_hop_id="ATUid_6c1f0b7f2a9e4d3c8b5a:4",
        last_reply=REPLY,
    )


@pytest.mark.parametrize(
    "session_id", ["ATUid_6c1f0b7f2a9e4d3c8b5a", "CA" + "f" * 32, "a}b{c", "{}", "%7D"]
)
def test_all_keys_of_a_session_share_one_slot(session_id: str) -> None:
    ref = SessionRef("ussd", "africastalking", session_id)
    keys = session_keys(KEY_PREFIX, ref)
    assert session_key(KEY_PREFIX, ref) in keys
    tag = "{ussd:africastalking:"
    for key in keys:
        # Exactly one '{' and one '}': the tag Redis hashes is the whole identity.
        assert key.count("{") == key.count("}") == 1
        assert key[key.index("{") :].startswith(tag)
        assert key_slot(key.encode()) == key_slot(
            tag[1:].encode() + key.split(tag)[1][:-1].encode()
        )
    assert len({key_slot(k.encode()) for k in keys}) == 1


def test_slots_spread_sessions_across_the_cluster() -> None:
    slots = {
        key_slot(session_key(KEY_PREFIX, SessionRef("ussd", "at", f"s{i}")).encode())
        for i in range(200)
    }
    assert len(slots) > 150  # the tag holds the session id, not just the prefix


async def test_only_the_session_keys_are_written(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    ref = SessionRef("ussd", "africastalking", "a}b")
    await store.create(typical(ref))
    written = {k.decode() async for k in redis_client.scan_iter(match="*")}
    assert written == set(session_keys(KEY_PREFIX, ref))


def test_resume_key_slot_is_the_subscribers() -> None:
    key = resume_key(KEY_PREFIX, "ussd", "+79161234567")
    assert key == "ussd:resume:{ussd:+79161234567}"
    assert key_slot(key.encode()) == key_slot(b"ussd:+79161234567")


async def test_a_typical_record_stays_small(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    ref = SessionRef("ussd", "africastalking", "ATUid_6c1f0b7f2a9e4d3c8b5a")
    await store.create(typical(ref))
    usage = await redis_client.memory_usage(session_key(KEY_PREFIX, ref))
    # Measured on Redis 6.2: 1203 bytes. The hash is in hashtable encoding
    # because the Cyrillic reply (~330 bytes of UTF-8) is over
    # hash-max-ziplist-value; the 2 KB bound leaves room for longer breadcrumbs.
    assert usage is not None
    assert usage < TYPICAL_RECORD_MAX_BYTES


class _Counted:
    """Counts the requests a connection sends (one pipeline counts once)."""

    sent = 0

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).sent += 1
        await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]


@pytest.fixture
async def counted_client(
    servers: Any, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[aioredis.Redis, type[_Counted]]]:
    pool = aioredis.ConnectionPool.from_url(servers.redis_url)
    counter = type("Counter", (_Counted, pool.connection_class), {"sent": 0})
    pool.connection_class = counter
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
        yield client, counter
    finally:
        await client.aclose()
        await pool.aclose()


async def test_one_round_trip_to_load_and_one_to_save(
    counted_client: tuple[aioredis.Redis, type[_Counted]],
) -> None:
    client, counter = counted_client
    store = RedisSessionStore(client)
    ref = SessionRef("ussd", "africastalking", "rt")
    await client.script_flush()
    counter.sent = 0
    assert (await store.create(typical(ref))).saved
    # NOSCRIPT after a flush (or a failover): EVALSHA, SCRIPT LOAD, EVALSHA.
    assert counter.sent == 3

    for version in (1, 2, 3):
        counter.sent = 0
        loaded = await store.load(ref)
        assert counter.sent == 1
        assert loaded is not None
        assert loaded.version == version
        result = await store.save(dataclasses.replace(loaded, node="n"), loaded.version)
        assert result.saved
        assert counter.sent == 2


async def test_an_unreachable_redis_is_a_store_error() -> None:
    client = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    store = RedisSessionStore(client, StoreSettings())
    ref = SessionRef("ussd", "at", "x")
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.load(ref)
        assert isinstance(caught.value.__cause__, RedisConnectionError)
        with pytest.raises(StoreUnavailableError):
            await store.create(typical(ref))
    finally:
        await client.aclose()
