"""Each ledger operation on its own, against a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from ledger_harness import LedgerHarness, key, new_msisdn

import ledger
from ledger import Code, InvalidMsisdn, LedgerSettings
from ledger.points import add_months


def test_numbers_in_the_forms_people_type() -> None:
    for raw in ("+7 916 123-45-67", "8 916 123 45 67", "79161234567", "9161234567"):
        assert ledger.normalize_msisdn(raw, "RU") == "+79161234567"
    assert ledger.try_normalize_msisdn("12", "RU") is None
    with pytest.raises(InvalidMsisdn):
        ledger.normalize_msisdn("hello", "RU")


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)


# -- subscribers ----------------------------------------------------------------


async def test_enroll_once_then_already_enrolled(lg: LedgerHarness) -> None:
    number = new_msisdn()
    assert await ledger.get_subscriber(lg.pool, number) is None
    first = await ledger.enroll(lg.pool, "8" + number[2:], key="k1", **lg.ctx)
    assert first.ok
    assert first.data == {"msisdn": number, "status": "active", "enrolled_at": lg.clock.now()}
    again = await ledger.enroll(lg.pool, number, key="k2", **lg.ctx)
    assert again.code is Code.ALREADY_ENROLLED
    sub = await ledger.get_subscriber(lg.pool, number)
    assert sub is not None
    assert (sub.status, sub.language) == ("active", "ru")


async def test_blocked_subscriber_cannot_enroll_spend_or_gift(lg: LedgerHarness) -> None:
    number = await lg.member(500)
    other = await lg.member()
    assert (await ledger.block(lg.pool, number, key=key(), **lg.ctx)).ok
    assert (await ledger.enroll(lg.pool, number, key=key(), **lg.ctx)).code is Code.BLOCKED
    assert (await ledger.balance(lg.pool, number, **lg.ctx)).code is Code.BLOCKED
    redeem = await ledger.redeem(lg.pool, number, "sms-50", key=key(), **lg.ctx)
    assert redeem.code is Code.BLOCKED
    assert (await ledger.gift(lg.pool, number, other, 50, key=key(), **lg.ctx)).code is Code.BLOCKED
    to_blocked = await ledger.gift(lg.pool, other, number, 50, key=key(), **lg.ctx)
    assert to_blocked.code is Code.RECIPIENT_NOT_ENROLLED
    assert (await ledger.history(lg.pool, number)).ok


async def test_set_language_before_and_after_joining(lg: LedgerHarness) -> None:
    number = new_msisdn()
    bad = await ledger.set_language(lg.pool, number, "fr", key=key(), **lg.ctx)
    assert bad.code is Code.UNSUPPORTED_LANGUAGE
    assert await ledger.get_subscriber(lg.pool, number) is None
    assert (await ledger.set_language(lg.pool, number, "en", key=key(), **lg.ctx)).data == {
        "msisdn": number,
        "language": "en",
    }
    sub = await ledger.get_subscriber(lg.pool, number)
    assert sub is not None
    assert (sub.status, sub.language) == ("not_enrolled", "en")
    assert (await ledger.balance(lg.pool, number, **lg.ctx)).code is Code.NOT_ENROLLED
    assert (await ledger.enroll(lg.pool, number, key=key(), **lg.ctx)).ok
    summary = await ledger.subscriber_summary(lg.pool, number, **lg.ctx)
    assert summary is not None
    assert (summary.status, summary.language, summary.balance.available) == ("active", "en", 0)


async def test_invalid_own_number_raises(lg: LedgerHarness) -> None:
    with pytest.raises(InvalidMsisdn):
        await ledger.enroll(lg.pool, "12345", key=key(), **lg.ctx)


# -- idempotency ---------------------------------------------------------------------


async def test_same_key_same_request_returns_the_first_result(lg: LedgerHarness) -> None:
    number = await lg.member()
    first = await ledger.accrue(lg.pool, number, 100, key="bill-1", **lg.ctx)
    lg.clock.advance(timedelta(hours=1))
    second = await ledger.accrue(lg.pool, number, 100, key="bill-1", **lg.ctx)
    assert first == second
    assert (first.replayed, second.replayed) == (False, True)
    assert await lg.available(number) == 100


async def test_same_key_different_request_is_a_conflict(lg: LedgerHarness) -> None:
    number = await lg.member()
    assert (await ledger.accrue(lg.pool, number, 100, key="bill-2", **lg.ctx)).ok
    other = await ledger.accrue(lg.pool, number, 101, key="bill-2", **lg.ctx)
    assert other.code is Code.IDEMPOTENCY_CONFLICT
    kind = await ledger.enroll(lg.pool, number, key="bill-2", **lg.ctx)
    assert kind.code is Code.IDEMPOTENCY_CONFLICT
    assert await lg.available(number) == 100


async def test_a_rejection_stays_a_rejection_when_retried(lg: LedgerHarness) -> None:
    number = await lg.member(100)
    refused = await ledger.redeem(lg.pool, number, "min-50", key="r-1", **lg.ctx)
    assert refused.code is Code.INSUFFICIENT_POINTS
    assert refused.data == {"available": 100, "price": 150}
    await ledger.accrue(lg.pool, number, 1000, key=key(), **lg.ctx)
    retried = await ledger.redeem(lg.pool, number, "min-50", key="r-1", **lg.ctx)
    assert retried == refused
    assert retried.replayed
    assert await lg.available(number) == 1100


@pytest.mark.parametrize("bad_key", ["", "k" * 201])
async def test_missing_or_overlong_key_is_refused(lg: LedgerHarness, bad_key: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        await ledger.enroll(lg.pool, new_msisdn(), key=bad_key, **lg.ctx)


# -- accrual, balance, history, expiry ---------------------------------------------


async def test_accrue_requires_enrolment_and_positive_points(lg: LedgerHarness) -> None:
    number = new_msisdn()
    assert (await ledger.accrue(lg.pool, number, 10, key=key(), **lg.ctx)).code is (
        Code.NOT_ENROLLED
    )
    await lg.member(msisdn=number)
    for bad in (0, -5):
        with pytest.raises(ValueError, match="positive"):
            await ledger.accrue(lg.pool, number, bad, key=key(), **lg.ctx)


async def test_accrual_expires_after_twelve_months_by_default(lg: LedgerHarness) -> None:
    number = await lg.member()
    result = await ledger.accrue(lg.pool, number, 300, key=key(), reason="bill", **lg.ctx)
    value = result.unwrap()
    assert value.expires_at == add_months(lg.clock.now(), 12)
    assert value.available == 300


async def test_balance_reports_soonest_expiring_lots(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    number = await lg.member()
    soon = now + timedelta(days=3)
    for points, expiry in (
        (100, soon),
        (50, soon + timedelta(hours=2)),
        (400, now + timedelta(days=90)),
    ):
        await ledger.accrue(lg.pool, number, points, key=key(), expires_at=expiry, **lg.ctx)
    bal = (await ledger.balance(lg.pool, number, **lg.ctx)).unwrap()
    assert bal.available == 550
    assert (bal.expiring_points, bal.expiring_at) == (150, soon)
    assert bal.expiring_date == date(2025, 1, 18)
    data = (await ledger.balance(lg.pool, number, **lg.ctx)).data
    assert {"available", "pending_in", "pending_out", "expiring_points", "expiring_date"} <= set(
        data
    )
    # Past the first expiry the lots no longer count, even before the sweeper runs.
    lg.clock.advance(timedelta(days=3, hours=1))
    bal = (await ledger.balance(lg.pool, number, **lg.ctx)).unwrap()
    assert (bal.available, bal.expiring_points) == (450, 50)


async def test_expire_points_moves_expired_lots_only(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    number = await lg.member()
    await ledger.accrue(
        lg.pool, number, 70, key=key(), expires_at=now + timedelta(days=1), **lg.ctx
    )
    await ledger.accrue(
        lg.pool, number, 30, key=key(), expires_at=now + timedelta(days=9), **lg.ctx
    )
    assert await ledger.expire_points(lg.pool, **lg.ctx) == 0
    lg.clock.advance(timedelta(days=2))
    assert await ledger.expire_points(lg.pool, **lg.ctx) == 70
    assert await ledger.expire_points(lg.pool, **lg.ctx) == 0
    assert await lg.available(number) == 30
    kinds = [item.kind for item in (await ledger.history(lg.pool, number)).unwrap().items]
    assert kinds == ["expiry", "accrual", "accrual"]


async def test_history_is_newest_first_with_kinds_and_limit(lg: LedgerHarness) -> None:
    a = await lg.member(1000)
    b = await lg.member()
    assert (await ledger.redeem(lg.pool, a, "sms-50", key=key(), **lg.ctx)).ok
    sent = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    assert (await ledger.decline_gift(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)).ok
    items = (await ledger.history(lg.pool, a)).unwrap().items
    assert [(i.kind, i.points, i.balance_after) for i in items] == [
        ("gift_returned", 100, 920),
        ("gift_sent", -100, 820),
        ("redemption", -80, 920),
        ("accrual", 1000, 1000),
    ]
    assert len((await ledger.history(lg.pool, a, 2)).unwrap().items) == 2
    assert (await ledger.history(lg.pool, new_msisdn())).code is Code.NOT_ENROLLED
    assert set((await ledger.history(lg.pool, a)).data["items"][0]) >= {
        "kind",
        "points",
        "created_at",
    }


# -- catalogue and redemptions ----------------------------------------------------------


async def test_default_catalogue_has_every_category_in_both_languages(lg: LedgerHarness) -> None:
    ru = (await ledger.list_catalog(lg.pool, language="ru")).unwrap().items
    en = (await ledger.list_catalog(lg.pool, language="en")).unwrap().items
    assert len(ru) == len(en) >= 20
    assert {item.category for item in ru} == {
        "minutes", "sms_mms", "internet", "certificates", "gifts", "subscriptions",
    }  # fmt: skip
    assert ru[0].title != en[0].title
    internet = (await ledger.list_catalog(lg.pool, category="internet")).unwrap().items
    assert internet
    assert all(item.category == "internet" for item in internet)
    assert set((await ledger.list_catalog(lg.pool)).data["items"][0]) == {
        "code", "title", "description", "price", "category",
    }  # fmt: skip


async def test_catalogue_reload_updates_and_deactivates(lg: LedgerHarness) -> None:
    text = """
rewards:
  - code: min-50
    category: minutes
    price: 99
    title: {ru: "Минуты", en: "Minutes"}
    description: {ru: "Описание", en: "Description"}
"""
    loaded = await ledger.load_catalog(lg.pool, text)
    assert loaded.loaded == 1
    assert len(loaded.deactivated) >= 20
    items = (await ledger.list_catalog(lg.pool, language="en")).unwrap().items
    assert [(i.code, i.price, i.title) for i in items] == [("min-50", 99, "Minutes")]
    number = await lg.member(1000)
    assert (await ledger.redeem(lg.pool, number, "gb-1", key=key(), **lg.ctx)).code is (
        Code.UNKNOWN_REWARD
    )
    again = await ledger.load_catalog(lg.pool, text)
    assert again.deactivated == []


@pytest.mark.parametrize(
    "text",
    [
        "rewards: [{code: x1, category: food, price: 5, title: {ru: a, en: b}, "
        "description: {ru: a, en: b}}]",
        "rewards: [{code: x1, category: gifts, price: 0, title: {ru: a, en: b}, "
        "description: {ru: a, en: b}}]",
        "rewards: [{code: x1, category: gifts, price: 5, title: {ru: a}, "
        "description: {ru: a, en: b}}]",
        "rewards: [{code: x1, category: gifts, price: 5, title: {ru: a, en: b}, "
        "description: {ru: a, en: b}}, {code: x1, category: gifts, price: 5, "
        "title: {ru: a, en: b}, description: {ru: a, en: b}}]",
        "rewards: [",
    ],
)
async def test_malformed_catalogue_is_refused(lg: LedgerHarness, text: str) -> None:
    with pytest.raises(ledger.CatalogError):
        await ledger.load_catalog(lg.pool, text)
    assert len((await ledger.list_catalog(lg.pool)).unwrap().items) >= 20


async def test_redeem_in_dev_is_fulfilled_at_once(lg: LedgerHarness) -> None:
    number = await lg.member(1000)
    result = await ledger.redeem(lg.pool, number, "GB-1", key=key(), **lg.ctx)
    value = result.unwrap()
    assert (value.reward_code, value.points, value.available) == ("gb-1", 200, 800)
    assert value.reward_title == "1 ГБ интернета"
    status = await lg.pool.fetchval(
        "SELECT status FROM redemptions WHERE id = $1", value.redemption_id
    )
    assert status == "fulfilled"
    events = await ledger.list_outbox(lg.pool)
    assert [(e.event, e.msisdn, e.payload["points"]) for e in events] == [
        ("reward_fulfilled", number, 200)
    ]
    assert (await ledger.redeem(lg.pool, number, "nope", key=key(), **lg.ctx)).code is (
        Code.UNKNOWN_REWARD
    )


@pytest.mark.parametrize("settings", [LedgerSettings(provisioning="external")])
async def test_failed_redemption_returns_points_to_the_same_lots(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    number = await lg.member()
    await ledger.accrue(
        lg.pool, number, 100, key=key(), expires_at=now + timedelta(days=5), **lg.ctx
    )
    await ledger.accrue(
        lg.pool, number, 500, key=key(), expires_at=now + timedelta(days=50), **lg.ctx
    )
    lots_before = await lg.pool.fetch("SELECT id, remaining FROM point_lots ORDER BY id")
    value = (await ledger.redeem(lg.pool, number, "min-50", key=key(), **lg.ctx)).unwrap()
    assert value.status == "reserved"
    bal = (await ledger.balance(lg.pool, number, **lg.ctx)).unwrap()
    assert (bal.available, bal.pending_out) == (450, 150)
    # Soonest-expiring first: the 100-point lot is emptied, 50 come from the other.
    assert [r["remaining"] for r in await lg.pool.fetch(
        "SELECT remaining FROM point_lots ORDER BY id")] == [0, 450]  # fmt: skip
    failed = await ledger.fail_redemption(
        lg.pool, value.redemption_id, key=key(), reason="no stock", **lg.ctx
    )
    assert failed.data["status"] == "failed"
    lots_after = await lg.pool.fetch("SELECT id, remaining FROM point_lots ORDER BY id")
    assert lots_after == lots_before
    assert await lg.available(number) == 600
    late = await ledger.fulfil_redemption(lg.pool, value.redemption_id, key=key(), **lg.ctx)
    assert late.code is Code.REDEMPTION_NOT_RESERVED
    unknown = await ledger.fulfil_redemption(lg.pool, 999_999, key=key(), **lg.ctx)
    assert unknown.code is Code.UNKNOWN_REDEMPTION
    assert [e.event for e in await ledger.list_outbox(lg.pool)] == ["reward_failed"]
    kinds = [i.kind for i in (await ledger.history(lg.pool, number)).unwrap().items]
    assert kinds[:2] == ["redemption_refund", "redemption"]


@pytest.mark.parametrize("settings", [LedgerSettings(provisioning="external")])
async def test_fulfilled_redemption_moves_escrow_to_redemption(lg: LedgerHarness) -> None:
    number = await lg.member(300)
    value = (await ledger.redeem(lg.pool, number, "min-50", key=key(), **lg.ctx)).unwrap()
    done = await ledger.fulfil_redemption(lg.pool, value.redemption_id, key="cb-1", **lg.ctx)
    assert done.ok
    assert (await ledger.fulfil_redemption(lg.pool, value.redemption_id, key="cb-1", **lg.ctx)) == (
        done
    )
    bal = (await ledger.balance(lg.pool, number, **lg.ctx)).unwrap()
    assert (bal.available, bal.pending_out) == (150, 0)


# -- gifts ------------------------------------------------------------------------------


async def test_gift_rules_in_order(lg: LedgerHarness) -> None:
    settings = lg.settings
    a = await lg.member(30_000)
    b = await lg.member()
    stranger = new_msisdn()
    cases = [
        (new_msisdn(), b, 50, Code.NOT_ENROLLED),
        (a, "12", 50, Code.INVALID_RECIPIENT),
        (a, "8" + a[2:], 50, Code.SELF_GIFT),
        (a, b, settings.gift_min_points - 1, Code.BELOW_MINIMUM),
        (a, b, 0, Code.BELOW_MINIMUM),
        (a, b, settings.gift_max_points + 1, Code.ABOVE_MAXIMUM),
        (a, stranger, 50, Code.RECIPIENT_NOT_ENROLLED),
    ]
    for sender, recipient, points, code in cases:
        before = await lg.snapshot()
        result = await ledger.gift(lg.pool, sender, recipient, points, key=key(), **lg.ctx)
        assert result.code is code, (sender, recipient, points)
        assert await lg.snapshot() == before


async def test_daily_cap_counts_the_local_day(lg: LedgerHarness) -> None:
    cap = lg.settings.gift_daily_cap_points
    a = await lg.member(cap * 3)
    b = await lg.member()
    mx = lg.settings.gift_max_points
    sent = 0
    while sent + mx <= cap:
        assert (await ledger.gift(lg.pool, a, b, mx, key=key(), **lg.ctx)).ok
        sent += mx
    over = await ledger.gift(lg.pool, a, b, cap - sent + mx, key=key(), **lg.ctx)
    assert over.code is Code.DAILY_CAP_EXCEEDED
    assert over.data == {"cap": cap, "allowance": cap - sent}
    # Cancelling a gift gives its points back to today's allowance.
    first = (await ledger.pending_gifts(lg.pool, b, **lg.ctx)).unwrap().items[0]
    assert (await ledger.cancel_gift(lg.pool, a, first.gift_id, key=key(), **lg.ctx)).ok
    assert (await ledger.gift(lg.pool, a, b, first.points, key=key(), **lg.ctx)).ok
    # Moscow midnight is 21:00 UTC: the next local day starts a new allowance.
    lg.clock.set(datetime(2025, 1, 15, 21, 0, tzinfo=UTC))
    assert (await ledger.gift(lg.pool, a, b, mx, key=key(), **lg.ctx)).ok


async def test_insufficient_points_for_a_gift(lg: LedgerHarness) -> None:
    a = await lg.member(40)
    b = await lg.member()
    before = await lg.snapshot()
    result = await ledger.gift(lg.pool, a, b, 50, key=key(), **lg.ctx)
    assert result.code is Code.INSUFFICIENT_POINTS
    assert result.data == {"available": 40}
    assert await lg.snapshot() == before


async def test_gift_then_accept(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    a = await lg.member()
    await ledger.accrue(lg.pool, a, 60, key=key(), expires_at=now + timedelta(days=10), **lg.ctx)
    await ledger.accrue(lg.pool, a, 100, key=key(), expires_at=now + timedelta(days=99), **lg.ctx)
    b = await lg.member()
    sent = await ledger.gift(lg.pool, a, "8" + b[2:], 100, key=key(), **lg.ctx)
    assert sent.data == {
        "gift_id": sent.unwrap().gift_id,
        "points": 100,
        "recipient": b,
        "expires_at": now + lg.settings.gift_ttl,
        "available": 60,
    }
    assert (await ledger.balance(lg.pool, a, **lg.ctx)).unwrap().pending_out == 100
    assert (await ledger.balance(lg.pool, b, **lg.ctx)).unwrap().pending_in == 100
    pending = (await ledger.pending_gifts(lg.pool, b, **lg.ctx)).unwrap()
    assert pending.count == 1
    assert pending.items[0].sender == a
    accepted = await ledger.accept_gift(lg.pool, b, key=key(), **lg.ctx)
    assert accepted.data == {
        "gift_id": sent.unwrap().gift_id,
        "points": 100,
        "sender": a,
        "available": 100,
        "remaining": 0,
    }
    # The points keep the expiry dates they had with the sender.
    expiries = await lg.pool.fetch(
        "SELECT l.remaining, l.expires_at FROM point_lots l JOIN accounts a ON a.id = l.account_id "
        "JOIN subscribers s ON s.id = a.subscriber_id WHERE s.msisdn = $1 ORDER BY l.expires_at",
        b,
    )
    assert [tuple(r) for r in expiries] == [
        (60, now + timedelta(days=10)),
        (40, now + timedelta(days=99)),
    ]
    events = [(e.event, e.msisdn) for e in await ledger.list_outbox(lg.pool)]
    assert events == [("gift_received", b), ("gift_accepted", a)]
    again = await ledger.accept_gift(lg.pool, b, sent.unwrap().gift_id, key=key(), **lg.ctx)
    assert again.code is Code.GIFT_NOT_PENDING
    assert (await ledger.accept_gift(lg.pool, b, key=key(), **lg.ctx)).code is Code.NO_PENDING_GIFT


async def test_accept_oldest_first_and_not_someone_elses(lg: LedgerHarness) -> None:
    a = await lg.member(1000)
    b = await lg.member()
    c = await lg.member()
    first = (await ledger.gift(lg.pool, a, b, 10, key=key(), **lg.ctx)).unwrap()
    lg.clock.advance(timedelta(minutes=1))
    second = (await ledger.gift(lg.pool, a, b, 20, key=key(), **lg.ctx)).unwrap()
    foreign = await ledger.accept_gift(lg.pool, c, first.gift_id, key=key(), **lg.ctx)
    assert foreign.code is Code.NO_PENDING_GIFT
    got = (await ledger.accept_gift(lg.pool, b, key=key(), **lg.ctx)).unwrap()
    assert (got.gift_id, got.remaining) == (first.gift_id, 1)
    declined = (await ledger.decline_gift(lg.pool, b, key=key(), **lg.ctx)).unwrap()
    assert (declined.gift_id, declined.points, declined.remaining) == (second.gift_id, 20, 0)
    assert await lg.available(a) == 990


async def test_accept_checks_expiry_itself(lg: LedgerHarness) -> None:
    a = await lg.member(500)
    b = await lg.member()
    sent = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    lg.clock.set(sent.expires_at)
    for op in (ledger.accept_gift, ledger.decline_gift):
        result = await op(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)
        assert result.code is Code.GIFT_EXPIRED
    cancel = await ledger.cancel_gift(lg.pool, a, sent.gift_id, key=key(), **lg.ctx)
    assert cancel.code is Code.GIFT_EXPIRED
    assert (await ledger.accept_gift(lg.pool, b, key=key(), **lg.ctx)).code is Code.NO_PENDING_GIFT
    assert (await ledger.balance(lg.pool, b, **lg.ctx)).unwrap().pending_in == 0
    assert await ledger.expire_gifts(lg.pool, **lg.ctx) == 1
    assert await ledger.expire_gifts(lg.pool, **lg.ctx) == 0
    assert await lg.available(a) == 500
    after = await ledger.accept_gift(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)
    assert after.code is Code.GIFT_EXPIRED
    events = sorted((e.event, e.msisdn) for e in await ledger.list_outbox(lg.pool))
    assert events == sorted([("gift_received", b), ("gift_expired", b), ("gift_returned", a)])


async def test_cancel_by_sender_only(lg: LedgerHarness) -> None:
    a = await lg.member(500)
    b = await lg.member()
    sent = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    by_recipient = await ledger.cancel_gift(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)
    assert by_recipient.code is Code.NO_PENDING_GIFT
    cancelled = await ledger.cancel_gift(lg.pool, a, sent.gift_id, key=key(), **lg.ctx)
    assert cancelled.data == {
        "gift_id": sent.gift_id,
        "points": 100,
        "recipient": b,
        "available": 500,
    }
    assert (await ledger.accept_gift(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)).code is (
        Code.GIFT_NOT_PENDING
    )
    assert [e.event for e in await ledger.list_outbox(lg.pool)][-1] == "gift_cancelled"


async def test_returned_points_keep_their_expiry(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    a = await lg.member()
    await ledger.accrue(lg.pool, a, 100, key=key(), expires_at=now + timedelta(days=1), **lg.ctx)
    b = await lg.member()
    sent = (await ledger.gift(lg.pool, a, b, 100, key=key(), **lg.ctx)).unwrap()
    # The lot expires while the gift is pending; the returned points are expired too.
    lg.clock.advance(timedelta(days=2))
    assert await ledger.expire_points(lg.pool, **lg.ctx) == 0
    assert (await ledger.decline_gift(lg.pool, b, sent.gift_id, key=key(), **lg.ctx)).ok
    assert await lg.available(a) == 0
    assert await ledger.expire_gifts(lg.pool, **lg.ctx) == 0
    assert await ledger.expire_points(lg.pool, **lg.ctx) == 100


# -- outbox -------------------------------------------------------------------------------


async def test_outbox_claim_send_fail_backoff_and_park(lg: LedgerHarness) -> None:
    settings = LedgerSettings(outbox_max_attempts=3, outbox_lease=timedelta(hours=1))
    a = await lg.member(500)
    b = await lg.member()
    for _ in range(3):
        assert (await ledger.gift(lg.pool, a, b, 10, key=key(), **lg.ctx)).ok
    claimed = await ledger.claim_due(lg.pool, limit=2, clock=lg.clock, settings=settings)
    assert [m.attempts for m in claimed] == [1, 1]
    assert claimed[0].payload["language"] == "ru"
    # Leased: another worker does not get them.
    rest = await ledger.claim_due(lg.pool, limit=10, clock=lg.clock, settings=settings)
    assert [m.id for m in rest] == [max(m.id for m in claimed) + 1]
    assert await ledger.mark_sent(lg.pool, claimed[0].id, clock=lg.clock)
    assert not await ledger.mark_sent(lg.pool, claimed[0].id, clock=lg.clock)
    failing = claimed[1].id
    status = await ledger.record_failure(
        lg.pool, failing, "smsc down", clock=lg.clock, settings=settings
    )
    assert status == "pending"
    assert await ledger.claim_due(lg.pool, clock=lg.clock, settings=settings) == []
    lg.clock.advance(settings.outbox_backoff_base)
    again = await ledger.claim_due(lg.pool, clock=lg.clock, settings=settings)
    assert [(m.id, m.attempts) for m in again] == [(failing, 2)]
    await ledger.record_failure(lg.pool, failing, "smsc down", clock=lg.clock, settings=settings)
    lg.clock.advance(settings.outbox_backoff_base * 2)
    third = await ledger.claim_due(lg.pool, clock=lg.clock, settings=settings)
    assert [(m.id, m.attempts) for m in third] == [(failing, 3)]
    parked = await ledger.record_failure(
        lg.pool, failing, "x" * 900, clock=lg.clock, settings=settings
    )
    assert parked == "failed"
    failed = await ledger.list_outbox(lg.pool, "failed")
    assert [(m.id, len(m.last_error or "")) for m in failed] == [(failing, 500)]
    assert [m.id for m in await ledger.list_outbox(lg.pool, "sent")] == [claimed[0].id]
    # A lease that runs out makes the message due again.
    lg.clock.advance(settings.outbox_lease)
    assert [m.id for m in await ledger.claim_due(lg.pool, clock=lg.clock, settings=settings)] == [
        rest[0].id
    ]


async def test_outbox_permanent_failure_parks_at_once(lg: LedgerHarness) -> None:
    a = await lg.member(500)
    b = await lg.member()
    await ledger.gift(lg.pool, a, b, 10, key=key(), **lg.ctx)
    (message,) = await ledger.claim_due(lg.pool, **lg.ctx)
    assert await ledger.record_failure(
        lg.pool, message.id, "bad number", permanent=True, **lg.ctx
    ) == ("failed")
    assert await ledger.record_failure(lg.pool, message.id, "again", **lg.ctx) is None
    assert json.dumps(message.payload)


class RecordingProvisioner:
    def __init__(self) -> None:
        self.submitted: list[ledger.Redemption] = []

    async def submit(self, redemption: ledger.Redemption) -> None:
        self.submitted.append(redemption)


async def test_a_given_provisioner_gets_the_redemption_again_on_retry(lg: LedgerHarness) -> None:
    number = await lg.member(500)
    provisioner = RecordingProvisioner()
    first = await ledger.redeem(
        lg.pool, number, "sms-50", key="p-1", provisioner=provisioner, **lg.ctx
    )
    await ledger.redeem(lg.pool, number, "sms-50", key="p-1", provisioner=provisioner, **lg.ctx)
    assert provisioner.submitted == [first.unwrap(), first.unwrap()]
    status = await lg.pool.fetchval("SELECT status FROM redemptions")
    assert status == "reserved"


async def test_sweep_expires_gifts_then_points(lg: LedgerHarness) -> None:
    now = lg.clock.now()
    a = await lg.member()
    await ledger.accrue(lg.pool, a, 100, key=key(), expires_at=now + timedelta(days=1), **lg.ctx)
    b = await lg.member()
    assert (await ledger.gift(lg.pool, a, b, 40, key=key(), **lg.ctx)).ok
    lg.clock.advance(timedelta(days=4))
    report = await ledger.sweep(lg.pool, **lg.ctx)
    assert (report.gifts_expired, report.points_expired) == (1, 100)
    assert await ledger.subscriber_summary(lg.pool, new_msisdn(), **lg.ctx) is None
