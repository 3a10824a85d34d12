"""Contract of every SessionStore backend (parametrised in conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import timedelta

import pytest
from redis.crc import key_slot
from session_harness import Harness

from session_store import (
    InvalidKeyError,
    ResumePoint,
    SaveStatus,
    SessionRecord,
    SessionRef,
    SessionStore,
    StoreSettings,
)
from session_store.keys import session_key, session_keys
from session_store.settings import IVR_SESSION_TTL, RESUME_WINDOW, USSD_SESSION_TTL

_ids = itertools.count()
MSISDN = "+79161234567"
# A typical reply: 180 characters, Cyrillic, line breaks, as a gateway shows it.
REPLY = ("Баланс: 1 250 баллов.\n1 Подарить\n2 Обменять\n0 Оператор\n" * 4)[:180]


def new_ref(channel: str = "ussd", gateway: str = "africastalking") -> SessionRef:
    return SessionRef(channel, gateway, f"ATUid_{next(_ids)}_e5f0c1")


def new_record(ref: SessionRef | None = None, **changes: object) -> SessionRecord:
    record = SessionRecord(
        ref=ref or new_ref(),
        menu_version="2024-05-01.1",
        node="main",
        state='{"vars":{"lang":"ru"},"fails":{},"crumbs":["main"]}',
        last_hop_id="hop-1",
        last_reply=REPLY,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def assert_close(actual_ms: int, expected: timedelta, slack_ms: int = 2000) -> None:
    expected_ms = int(expected.total_seconds() * 1000)
    assert expected_ms - slack_ms <= actual_ms <= expected_ms, (actual_ms, expected_ms)


# --- create / load / save ---------------------------------------------------


async def test_create_then_load_round_trips_every_field(store: SessionStore) -> None:
    record = new_record()
    result = await store.create(record)
    assert result.status is SaveStatus.SAVED
    assert result.saved
    assert result.record == dataclasses.replace(record, version=1)
    assert await store.load(record.ref) == dataclasses.replace(record, version=1)


async def test_load_of_unknown_session_is_none(store: SessionStore) -> None:
    assert await store.load(new_ref()) is None


async def test_none_hop_and_reply_round_trip(store: SessionStore) -> None:
    record = new_record(last_hop_id=None, last_reply=None)
    await store.create(record)
    loaded = await store.load(record.ref)
    assert loaded is not None
    assert (loaded.last_hop_id, loaded.last_reply) == (None, None)


async def test_create_twice_conflicts_with_the_first(store: SessionStore) -> None:
    first = new_record(node="first")
    await store.create(first)
    second = await store.create(dataclasses.replace(first, node="second", state="{}"))
    assert second.status is SaveStatus.CONFLICT
    assert not second.saved
    assert second.record == dataclasses.replace(first, version=1)
    assert await store.load(first.ref) == dataclasses.replace(first, version=1)


async def test_save_bumps_the_version_and_replaces_the_record(store: SessionStore) -> None:
    created = (await store.create(new_record())).record
    assert created is not None
    changed = dataclasses.replace(
        created, node="gift_amount", state='{"x":1}', last_hop_id=None, last_reply=None
    )
    result = await store.save(changed, expected_version=1)
    assert result.status is SaveStatus.SAVED
    assert result.record == dataclasses.replace(changed, version=2)
    # Fields set to None are gone, not left over from the previous hop.
    assert await store.load(created.ref) == dataclasses.replace(changed, version=2)
    again = await store.save(dataclasses.replace(changed, node="done"), expected_version=2)
    assert again.record is not None
    assert again.record.version == 3


async def test_stale_save_conflicts_and_returns_the_winner(store: SessionStore) -> None:
    record = new_record()
    await store.create(record)
    winner = dataclasses.replace(record, node="winner", last_hop_id="hop-2", last_reply="W")
    assert (await store.save(winner, expected_version=1)).saved
    loser = await store.save(dataclasses.replace(record, node="loser"), expected_version=1)
    assert loser.status is SaveStatus.CONFLICT
    assert loser.record == dataclasses.replace(winner, version=2)
    assert await store.load(record.ref) == dataclasses.replace(winner, version=2)


async def test_save_of_a_vanished_session_is_missing(store: SessionStore) -> None:
    record = new_record()
    result = await store.save(record, expected_version=1)
    assert result.status is SaveStatus.MISSING
    assert result.record is None
    # MISSING never creates the record behind the caller's back.
    assert await store.load(record.ref) is None


async def test_save_refuses_version_zero(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="create"):
        await store.save(new_record(), expected_version=0)


async def test_delete(store: SessionStore) -> None:
    record = new_record()
    await store.create(record)
    assert await store.delete(record.ref) is True
    assert await store.load(record.ref) is None
    assert await store.delete(record.ref) is False


async def test_sessions_are_kept_apart_by_channel_gateway_and_id(store: SessionStore) -> None:
    base = new_ref()
    refs = [
        base,
        dataclasses.replace(base, channel="ivr"),
        dataclasses.replace(base, gateway="native"),
        dataclasses.replace(base, session_id=base.session_id + "x"),
        # Braces and the escape character stay distinct after escaping.
        dataclasses.replace(base, session_id="a{b}c"),
        dataclasses.replace(base, session_id="a%7Bb%7Dc"),
    ]
    for index, ref in enumerate(refs):
        assert (await store.create(new_record(ref, node=f"n{index}"))).saved
    for index, ref in enumerate(refs):
        loaded = await store.load(ref)
        assert loaded is not None
        assert (loaded.ref, loaded.node) == (ref, f"n{index}")


@pytest.mark.parametrize(
    "ref",
    [
        SessionRef("USSD", "at", "1"),
        SessionRef("ussd", "a:t", "1"),
        SessionRef("ussd", "at", ""),
        SessionRef("ussd", "at", "x" * 129),
    ],
)
async def test_unusable_refs_are_refused(store: SessionStore, ref: SessionRef) -> None:
    with pytest.raises(InvalidKeyError):
        await store.load(ref)


# --- compare-and-set under real concurrency --------------------------------


async def test_concurrent_saves_with_one_expected_version_exactly_one_wins(
    store: SessionStore,
) -> None:
    record = new_record()
    await store.create(record)
    attempts = [
        dataclasses.replace(record, node=f"n{i}", last_hop_id="hop-2", last_reply=f"reply {i}")
        for i in range(50)
    ]
    results = await asyncio.gather(*(store.save(a, expected_version=1) for a in attempts))
    winners = [r for r in results if r.saved]
    assert len(winners) == 1
    winner = winners[0].record
    assert winner is not None
    assert winner.version == 2
    losers = [r for r in results if not r.saved]
    assert {r.status for r in losers} == {SaveStatus.CONFLICT}
    # Every loser sees the winner, so a duplicate hop replays the winner's reply.
    assert all(r.record == winner for r in losers)
    assert all(r.record and r.record.reply_for("hop-2") == winner.last_reply for r in losers)
    assert await store.load(record.ref) == winner


async def test_concurrent_creates_exactly_one_wins(store: SessionStore) -> None:
    ref = new_ref()
    results = await asyncio.gather(
        *(store.create(new_record(ref, node=f"n{i}")) for i in range(20))
    )
    assert sum(r.saved for r in results) == 1
    winner = next(r.record for r in results if r.saved)
    assert all(r.record == winner for r in results)


async def test_interleaved_hops_never_lose_an_update(store: SessionStore) -> None:
    """Read-modify-write loops racing on one session: every commit is kept."""
    ref = new_ref()
    await store.create(new_record(ref, state="0"))

    async def bump(times: int) -> None:
        done = 0
        while done < times:
            current = await store.load(ref)
            assert current is not None
            nxt = dataclasses.replace(current, state=str(int(current.state) + 1))
            if (await store.save(nxt, expected_version=current.version)).saved:
                done += 1

    await asyncio.gather(*(bump(10) for _ in range(5)))
    final = await store.load(ref)
    assert final is not None
    assert (final.state, final.version) == ("50", 51)


# --- last-hop replay data ---------------------------------------------------


async def test_last_hop_reply_replays_byte_for_byte(store: SessionStore) -> None:
    reply = REPLY + '\u0000 "quotes" \\ {json} 🙂'
    record = new_record(last_hop_id="AT:hop:7", last_reply=reply)
    await store.create(record)
    loaded = await store.load(record.ref)
    assert loaded is not None
    assert loaded.reply_for("AT:hop:7") == reply
    assert loaded.reply_for("AT:hop:8") is None
    assert new_record(last_hop_id=None).reply_for("") is None


# --- TTL --------------------------------------------------------------------


async def test_ttl_depends_on_the_channel(store: SessionStore, harness: Harness) -> None:
    ussd, ivr = new_record(new_ref("ussd")), new_record(new_ref("ivr", "twilio"))
    await store.create(ussd)
    await store.create(ivr)
    assert_close(await harness.session_ttl_ms(ussd.ref), USSD_SESSION_TTL)
    assert_close(await harness.session_ttl_ms(ivr.ref), IVR_SESSION_TTL)


async def test_ttl_comes_from_settings(harness: Harness) -> None:
    settings = StoreSettings(session_ttls={"ussd": timedelta(seconds=42)})
    store = harness.store(settings)
    ussd, sms = new_record(new_ref("ussd")), new_record(new_ref("sms", "smsc"))
    await store.create(ussd)
    await store.create(sms)
    assert_close(await harness.session_ttl_ms(ussd.ref), timedelta(seconds=42))
    assert_close(await harness.session_ttl_ms(sms.ref), settings.default_session_ttl)


async def test_save_refreshes_the_ttl(store: SessionStore, harness: Harness) -> None:
    record = new_record()
    await store.create(record)
    await harness.set_session_ttl_ms(record.ref, 5000)
    assert await harness.session_ttl_ms(record.ref) <= 5000
    await store.save(dataclasses.replace(record, node="next"), expected_version=1)
    assert_close(await harness.session_ttl_ms(record.ref), USSD_SESSION_TTL)


async def test_a_conflicting_save_does_not_refresh_the_ttl(
    store: SessionStore, harness: Harness
) -> None:
    record = new_record()
    await store.create(record)
    await harness.set_session_ttl_ms(record.ref, 5000)
    assert not (await store.create(record)).saved
    assert not (await store.save(record, expected_version=7)).saved
    assert await harness.session_ttl_ms(record.ref) <= 5000


async def test_an_expired_session_is_gone(harness: Harness) -> None:
    store = harness.store(StoreSettings(session_ttls={"ussd": timedelta(milliseconds=50)}))
    record = new_record()
    await store.create(record)
    assert await store.load(record.ref) is not None
    await asyncio.sleep(0.15)  # real expiry is the behaviour under test
    assert await store.load(record.ref) is None
    assert (await store.save(record, expected_version=1)).status is SaveStatus.MISSING
    # The gateway's next "begin" with the same id starts afresh.
    assert (await store.create(record)).saved


# --- resume after a dropped session ----------------------------------------


def point(msisdn: str = MSISDN, channel: str = "ussd", node: str = "gift_amount") -> ResumePoint:
    return ResumePoint(
        channel=channel,
        msisdn=msisdn,
        gateway="africastalking",
        session_id="ATUid_dropped",
        menu_version="2024-05-01.1",
        node=node,
        state='{"vars":{"to":"+79990001122"}}',
    )


async def test_resume_point_is_offered_once(store: SessionStore, harness: Harness) -> None:
    await store.remember_dropped(point())
    assert_close(await harness.resume_ttl_ms("ussd", MSISDN), RESUME_WINDOW)
    assert await store.take_dropped("ussd", MSISDN) == point()
    assert await store.take_dropped("ussd", MSISDN) is None


async def test_concurrent_takes_get_the_point_once(store: SessionStore) -> None:
    await store.remember_dropped(point())
    taken = await asyncio.gather(*(store.take_dropped("ussd", MSISDN) for _ in range(10)))
    assert [t for t in taken if t is not None] == [point()]


async def test_resume_points_are_per_subscriber_and_channel(store: SessionStore) -> None:
    await store.remember_dropped(point())
    await store.remember_dropped(point(msisdn="+79160000000", node="other"))
    await store.remember_dropped(point(channel="ivr", node="ivr_node"))
    assert await store.take_dropped("sms", MSISDN) is None
    assert await store.take_dropped("ivr", MSISDN) == point(channel="ivr", node="ivr_node")
    assert await store.take_dropped("ussd", MSISDN) == point()
    assert await store.take_dropped("ussd", "+79160000000") == point(
        msisdn="+79160000000", node="other"
    )


async def test_a_newer_drop_replaces_the_older(store: SessionStore) -> None:
    await store.remember_dropped(point(node="old"))
    await store.remember_dropped(point(node="new"))
    assert await store.take_dropped("ussd", MSISDN) == point(node="new")


async def test_forget(store: SessionStore) -> None:
    await store.remember_dropped(point())
    await store.forget("ussd", MSISDN)
    assert await store.take_dropped("ussd", MSISDN) is None
    await store.forget("ussd", MSISDN)  # forgetting nothing is fine


async def test_resume_window_is_configurable_and_expires(
    store: SessionStore, harness: Harness
) -> None:
    await store.remember_dropped(point(), window=timedelta(seconds=30))
    assert_close(await harness.resume_ttl_ms("ussd", MSISDN), timedelta(seconds=30))
    short = harness.store(StoreSettings(resume_window=timedelta(milliseconds=50)))
    await short.remember_dropped(point())
    await asyncio.sleep(0.15)  # real expiry is the behaviour under test
    assert await short.take_dropped("ussd", MSISDN) is None


@pytest.mark.parametrize("msisdn", ["79161234567", "+7 916 123-45-67", "+0123456", ""])
async def test_resume_needs_an_e164_number(store: SessionStore, msisdn: str) -> None:
    with pytest.raises(InvalidKeyError):
        await store.take_dropped("ussd", msisdn)


# --- a subscriber's session and pointer in one script -----------------------


def subscriber_ref(msisdn: str = MSISDN) -> SessionRef:
    return dataclasses.replace(new_ref(), msisdn=msisdn)


async def test_a_new_session_takes_the_pointer_in_its_first_read(store: SessionStore) -> None:
    await store.remember_dropped(point())
    ref = subscriber_ref()
    assert await store.load_or_take_dropped(ref) == (None, point())
    assert await store.load_or_take_dropped(ref) == (None, None), "offered once"


async def test_a_live_session_is_read_and_its_pointer_left(store: SessionStore) -> None:
    ref = subscriber_ref()
    await store.create(new_record(ref))
    await store.remember_dropped(point())
    record, taken = await store.load_or_take_dropped(ref)
    assert taken is None
    assert record == dataclasses.replace(new_record(ref), version=1)
    assert await store.take_dropped("ussd", MSISDN) == point(), "the pointer is still there"


async def test_a_winning_save_sets_or_deletes_the_pointer(
    store: SessionStore, harness: Harness
) -> None:
    ref = subscriber_ref()
    await store.create(new_record(ref))
    here = dataclasses.replace(point(), session_id=ref.session_id, node="gift_amount")
    saved = await store.save(new_record(ref, node="gift_amount"), 1, remember=here)
    assert saved.saved
    assert_close(await harness.resume_ttl_ms("ussd", MSISDN), RESUME_WINDOW)
    assert await store.take_dropped("ussd", MSISDN) == here
    await store.remember_dropped(here)
    assert (await store.save(new_record(ref, node="bye"), 2, forget=True)).saved
    assert await store.take_dropped("ussd", MSISDN) is None


async def test_a_losing_save_leaves_the_pointer_alone(store: SessionStore) -> None:
    ref = subscriber_ref()
    await store.create(new_record(ref))
    await store.save(new_record(ref, node="winner"), 1)
    lost = await store.save(new_record(ref, node="loser"), 1, remember=point(node="loser"))
    assert lost.status is SaveStatus.CONFLICT
    assert await store.take_dropped("ussd", MSISDN) is None
    await store.remember_dropped(point(node="kept"))
    await store.delete(ref)
    gone = await store.save(new_record(ref), 2, forget=True)
    assert gone.status is SaveStatus.MISSING
    assert await store.take_dropped("ussd", MSISDN) == point(node="kept")


async def test_a_pointer_is_saved_only_with_its_own_subscriber(store: SessionStore) -> None:
    ref = subscriber_ref()
    await store.create(new_record(ref))
    with pytest.raises(ValueError, match="own subscriber"):
        await store.save(new_record(ref), 1, remember=point(msisdn="+79160000000"))


async def test_sessions_of_one_subscriber_share_the_pointer_slot() -> None:
    ref = subscriber_ref()
    keys = session_keys("ussd", ref)
    assert len(keys) == 2
    assert len({key_slot(k.encode()) for k in keys}) == 1
    other = dataclasses.replace(ref, session_id="another_gateway_session")
    assert key_slot(session_key("ussd", other).encode()) == key_slot(keys[0].encode())
    assert session_key("ussd", other) != keys[0]
