"""Joining (how, the welcome SMS once) and blocking (audit, gifts sent back, races)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from ledger_harness import LedgerHarness, key, new_msisdn

import ledger
from ledger import Code, LedgerSettings, ManualClock


async def outbox(lg: LedgerHarness, event: str | None = None) -> list[ledger.OutboxMessage]:
    return [m for m in await ledger.list_outbox(lg.pool) if event is None or m.event == event]


# -- joining -------------------------------------------------------------------------


async def test_joining_sends_one_welcome_and_records_how(lg: LedgerHarness) -> None:
    number = new_msisdn()
    first_key = key()
    joined = await ledger.enroll(
        lg.pool, number, key=first_key, language="en", channel="shop", staff_id="shop-17",
        document_checked=True, **lg.ctx,
    )  # fmt: skip
    assert joined.ok
    # The retry with the same key replays; another way in finds a member already.
    replay = await ledger.enroll(
        lg.pool, number, key=first_key, language="en", channel="shop", staff_id="shop-17",
        document_checked=True, **lg.ctx,
    )  # fmt: skip
    assert replay == joined
    assert replay.replayed
    again = await ledger.enroll(lg.pool, number, key=key(), channel="web", **lg.ctx)
    assert again.code is Code.ALREADY_ENROLLED
    assert again.details["channel"] == "shop"
    assert again.details["staff_id"] == "shop-17"
    assert again.details["document_checked"] is True
    [welcome] = await outbox(lg, "welcome")
    assert (welcome.msisdn, welcome.payload) == (number, {"language": "en", "points": 0})
    record = await ledger.enrollment_record(lg.pool, number)
    assert record is not None
    assert (record.status, record.channel, record.staff_id, record.document_checked) == (
        "active", "shop", "shop-17", True,
    )  # fmt: skip
    assert record.enrolled_at == joined.unwrap().enrolled_at


async def test_a_self_enrolment_names_nobody(lg: LedgerHarness) -> None:
    number = new_msisdn()
    assert (await ledger.enroll(lg.pool, number, key=key(), **lg.ctx)).ok
    record = await ledger.enrollment_record(lg.pool, number)
    assert record is not None
    assert (record.channel, record.staff_id, record.document_checked) == ("self", None, None)
    assert await ledger.enrollment_record(lg.pool, new_msisdn()) is None


@pytest.mark.parametrize(
    ("channel", "staff_id", "message"),
    [
        ("kiosk", None, "channel must be one of"),
        ("shop", None, "needs the staff_id"),
        ("help_desk", "", "needs the staff_id"),
        ("self", "x" * 65, "staff_id must be 1 to 64"),
    ],
)
async def test_enrolment_refuses_unknown_channels_and_unnamed_staff(
    lg: LedgerHarness, channel: str, staff_id: str | None, message: str
) -> None:
    number = new_msisdn()
    with pytest.raises(ValueError, match=message):
        await ledger.enroll(
            lg.pool, number, key=key(), channel=channel, staff_id=staff_id, **lg.ctx
        )
    assert await ledger.get_subscriber(lg.pool, number) is None


async def test_a_blocked_number_cannot_join_and_gets_no_welcome(lg: LedgerHarness) -> None:
    number = new_msisdn()
    assert (await ledger.block(lg.pool, number, key=key(), reason="fraud", **lg.ctx)).ok
    assert (await ledger.enroll(lg.pool, number, key=key(), **lg.ctx)).code is Code.BLOCKED
    assert await outbox(lg, "welcome") == []


# -- blocking ------------------------------------------------------------------------


async def test_block_sends_pending_gifts_back_and_keeps_sent_ones(lg: LedgerHarness) -> None:
    blocked, friend, other = await lg.member(500), await lg.member(300), await lg.member(200)
    to_blocked = await ledger.gift(lg.pool, friend, blocked, 100, key=key(), **lg.ctx)
    also_to_blocked = await ledger.gift(lg.pool, other, blocked, 50, key=key(), **lg.ctx)
    from_blocked = await ledger.gift(lg.pool, blocked, other, 70, key=key(), **lg.ctx)
    assert [to_blocked.ok, also_to_blocked.ok, from_blocked.ok] == [True] * 3
    block_key = key()

    outcome = await ledger.block(
        lg.pool, blocked, key=block_key, reason="SIM swap fraud", actor="api:anna",
        staff_id="hd-4", **lg.ctx,
    )  # fmt: skip
    assert outcome.ok
    assert outcome.unwrap() == ledger.BlockChange(
        blocked, "blocked", changed=True, gifts_returned=2
    )
    # The senders have their points back, told by SMS; the history says so.
    assert await lg.available(friend) == 300
    assert await lg.available(other) == 200  # their 50 back; the 70 waits for them
    returned = await outbox(lg, "gift_returned")
    assert sorted((m.msisdn, m.payload["points"], m.payload["language"]) for m in returned) == (
        sorted([(friend, 100, "ru"), (other, 50, "ru")])
    )
    assert all(m.payload["reason"] == "blocked" for m in returned)
    history = (await ledger.history(lg.pool, friend, 5, settings=lg.settings)).unwrap()
    assert (history.items[0].kind, history.items[0].points) == ("gift_returned", 100)
    # What the blocked member sent stays pending for its recipient.
    waiting = (await ledger.pending_gifts(lg.pool, other, **lg.ctx)).unwrap()
    assert [(g.sender, g.points) for g in waiting.items] == [(blocked, 70)]
    assert (await ledger.pending_gifts(lg.pool, blocked, **lg.ctx)).unwrap().count == 0
    summary = await ledger.subscriber_summary(lg.pool, blocked, **lg.ctx)
    assert summary is not None
    assert summary.balance.available == 430  # kept, not spendable

    # A retry moves nothing twice; blocking again is harmless and audited.
    replay = await ledger.block(
        lg.pool, blocked, key=block_key, reason="SIM swap fraud", actor="api:anna",
        staff_id="hd-4", **lg.ctx,
    )  # fmt: skip
    assert replay == outcome
    again = await ledger.block(lg.pool, blocked, key=key(), reason="still fraud", **lg.ctx)
    assert again.unwrap() == ledger.BlockChange(blocked, "blocked", changed=False, gifts_returned=0)
    assert len(await outbox(lg, "gift_returned")) == 2
    assert await lg.available(friend) == 300
    audit = [
        (a.action, a.reason, a.actor, a.staff_id, a.changed, a.gifts_returned)
        for a in await ledger.block_history(lg.pool, blocked)
    ]
    assert audit == [
        ("block", "still fraud", "system", None, False, 0),
        ("block", "SIM swap fraud", "api:anna", "hd-4", True, 2),
    ]  # fmt: skip
    assert await lg.violations() == []


async def test_blocked_members_neither_send_nor_receive(lg: LedgerHarness) -> None:
    blocked, friend = await lg.member(500), await lg.member(500)
    await ledger.block(lg.pool, blocked, key=key(), reason="fraud", **lg.ctx)
    to_them = await ledger.gift(lg.pool, friend, blocked, 100, key=key(), **lg.ctx)
    # The sender is not told why (a block is between the operator and that subscriber).
    assert to_them.code is Code.RECIPIENT_NOT_ENROLLED
    from_them = await ledger.gift(lg.pool, blocked, friend, 100, key=key(), **lg.ctx)
    assert from_them.code is Code.BLOCKED
    assert (await ledger.gift_check(lg.pool, friend, blocked, **lg.ctx)).code is (
        Code.RECIPIENT_NOT_ENROLLED
    )
    assert await lg.available(friend) == 500


async def test_unblock_restores_what_they_were(lg: LedgerHarness) -> None:
    member, stranger = await lg.member(100), new_msisdn()
    for number in (member, stranger):
        assert (await ledger.block(lg.pool, number, key=key(), reason="check", **lg.ctx)).ok
    lifted = await ledger.unblock(lg.pool, member, key=key(), reason="cleared", **lg.ctx)
    assert lifted.unwrap() == ledger.BlockChange(member, "active", changed=True, gifts_returned=0)
    never_joined = await ledger.unblock(lg.pool, stranger, key=key(), reason="ok", **lg.ctx)
    assert never_joined.unwrap().status == "not_enrolled"
    # Unblocking someone not blocked changes nothing; a number never seen is refused.
    twice = await ledger.unblock(lg.pool, member, key=key(), reason="again", **lg.ctx)
    assert twice.unwrap() == ledger.BlockChange(member, "active", changed=False, gifts_returned=0)
    unknown = await ledger.unblock(lg.pool, new_msisdn(), key=key(), reason="x", **lg.ctx)
    assert unknown.code is Code.NOT_ENROLLED
    # Back in: they can gift again, and the stranger can join (with a welcome).
    friend = await lg.member()
    assert (await ledger.gift(lg.pool, member, friend, 10, key=key(), **lg.ctx)).ok
    assert (await ledger.enroll(lg.pool, stranger, key=key(), **lg.ctx)).ok
    assert [m.msisdn for m in await outbox(lg, "welcome")] == [stranger]
    actions = [(a.action, a.changed) for a in await ledger.block_history(lg.pool, member)]
    assert actions == [("unblock", False), ("unblock", True), ("block", True)]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
async def test_a_block_needs_a_reason(lg: LedgerHarness, reason: str) -> None:
    number = await lg.member()
    with pytest.raises(ValueError, match="reason"):
        await ledger.block(lg.pool, number, key=key(), reason=reason, **lg.ctx)
    assert (await ledger.get_subscriber(lg.pool, number)).status == "active"  # type: ignore[union-attr]


# -- races ---------------------------------------------------------------------------

CONCURRENCY = 10


@pytest.fixture
async def wide(
    database_url: str, lg: LedgerHarness, clock: ManualClock, settings: LedgerSettings
) -> AsyncIterator[LedgerHarness]:
    pool = await asyncpg.create_pool(database_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    assert pool is not None
    try:
        yield LedgerHarness(pool, clock, settings)
    finally:
        await pool.close()


async def test_gifts_racing_a_block_never_stay_pending_to_the_blocked(
    wide: LedgerHarness,
) -> None:
    """Gifts sent while the block commits either went back with it or were refused."""
    senders = [await wide.member(1000) for _ in range(CONCURRENCY - 1)]
    target = await wide.member()

    async def send(sender: str) -> ledger.Outcome[ledger.GiftSent]:
        return await ledger.gift(wide.pool, sender, target, 10, key=key(), **wide.ctx)

    results = await asyncio.gather(
        *(send(s) for s in senders),
        ledger.block(wide.pool, target, key=key(), reason="race", **wide.ctx),
    )
    codes = {r.code for r in results}
    assert codes <= {Code.OK, Code.RECIPIENT_NOT_ENROLLED}
    assert (await ledger.pending_gifts(wide.pool, target, **wide.ctx)).unwrap().count == 0
    pending = await wide.pool.fetchval(
        "SELECT count(*) FROM gifts g JOIN subscribers s ON s.id = g.recipient_id "
        "WHERE s.msisdn = $1 AND g.status = 'pending'",
        target,
    )
    assert pending == 0
    # Every sender has all their points: returned or never sent.
    assert [await wide.available(s) for s in senders] == [1000] * len(senders)
    assert await wide.violations() == []
