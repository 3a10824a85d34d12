"""Model-based test: random operations against the database and a small Python model.

After every step: ``ledger check`` is clean, every subscriber's balance and
status match the model, and a rejected operation changed nothing. A replayed
key returns the first answer and changes nothing either.

Hypothesis drives a synchronous state machine; the ledger's coroutines run on
an event loop in a helper thread with its own pool. The run is seeded
(``derandomize``), so it is the same on every machine; set
``LEDGER_MODEL_EXAMPLES`` to explore more.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    precondition,
    rule,
)

import ledger
from ledger import Code, LedgerSettings, ManualClock, Outcome

T = TypeVar("T")

EXAMPLES = int(os.environ.get("LEDGER_MODEL_EXAMPLES", "75"))
STEPS = 80
SETTINGS = LedgerSettings(
    gift_min_points=10,
    gift_max_points=300,
    gift_daily_cap_points=350,
    gift_ttl=timedelta(hours=72),
    provisioning="external",
)
NUMBERS = ["+79160000101", "+79160000102", "+79160000103", "+79160000104"]
# Hypothesis favours the first entries: ordinary gifts between members first, then
# self-gifts, a malformed number and a stranger.
GIFT_PAIRS = [
    (a, b) for a in NUMBERS[:3] for b in NUMBERS[:3] if a != b
] + [(NUMBERS[0], NUMBERS[3]), (NUMBERS[1], NUMBERS[1]), (NUMBERS[2], "123"),
     (NUMBERS[0], "+79160000199"), (NUMBERS[3], NUMBERS[0])]  # fmt: skip
REWARDS = {"sms-50": 80, "min-50": 150, "gb-1": 200, "no-such-reward": None}
ZONE = ZoneInfo(SETTINGS.timezone)
# Outcomes seen, by operation and code (printed with -s, to judge coverage).
STATS: dict[str, int] = {}

_RESET = """
SET session_replication_role = replica;
TRUNCATE subscribers, accounts, operations, postings, point_lots, lot_moves, gifts,
         redemptions, outbox, subscriber_blocks, earnings RESTART IDENTITY;
SET session_replication_role = DEFAULT;
INSERT INTO accounts (kind) VALUES ('issuance'), ('escrow'), ('redemption'), ('expired');
"""


class LoopThread:
    """An event loop in a helper thread, for calling coroutines from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


# -- the model ------------------------------------------------------------------------


@dataclass
class Lot:
    seq: int
    remaining: int
    expires_at: datetime


@dataclass
class MGift:
    sender: str
    recipient: str
    points: int
    created_at: datetime
    expires_at: datetime
    shares: list[tuple[Lot, int]]
    status: str = "pending"


@dataclass
class MRedemption:
    who: str
    points: int
    shares: list[tuple[Lot, int]]
    status: str = "reserved"


@dataclass
class Model:
    status: dict[str, str] = field(default_factory=dict)
    lots: dict[str, list[Lot]] = field(default_factory=dict)
    gifts: dict[int, MGift] = field(default_factory=dict)
    redemptions: dict[int, MRedemption] = field(default_factory=dict)
    lot_seq: int = 0

    def new_lot(self, who: str, amount: int, expires_at: datetime) -> Lot:
        self.lot_seq += 1
        lot = Lot(self.lot_seq, amount, expires_at)
        self.lots[who].append(lot)
        return lot

    def live(self, who: str, now: datetime) -> list[Lot]:
        lots = [lot for lot in self.lots.get(who, []) if lot.remaining > 0 and lot.expires_at > now]
        return sorted(lots, key=lambda lot: (lot.expires_at, lot.seq))

    def available(self, who: str, now: datetime) -> int:
        return sum(lot.remaining for lot in self.live(who, now))

    def take(self, who: str, points: int, now: datetime) -> list[tuple[Lot, int]]:
        shares = []
        for lot in self.live(who, now):
            if points == 0:
                break
            part = min(points, lot.remaining)
            lot.remaining -= part
            points -= part
            shares.append((lot, part))
        assert points == 0
        return shares

    @staticmethod
    def give_back(shares: list[tuple[Lot, int]]) -> None:
        for lot, part in shares:
            lot.remaining += part

    def has_pending(self) -> bool:
        return any(g.status == "pending" for g in self.gifts.values())

    def enrolled_code(self, who: str) -> Code:
        state = self.status.get(who, "not_enrolled")
        return {"active": Code.OK, "blocked": Code.BLOCKED}.get(state, Code.NOT_ENROLLED)

    def pending_in(self, who: str, now: datetime) -> list[tuple[int, MGift]]:
        found = [
            (gid, g)
            for gid, g in self.gifts.items()
            if g.recipient == who and g.status == "pending" and g.expires_at > now
        ]
        return sorted(found, key=lambda item: (item[1].created_at, item[0]))

    def gift_code(self, gift_id: int, party: str, who: str, now: datetime) -> Code:
        gift = self.gifts.get(gift_id)
        if gift is None or getattr(gift, party) != who:
            return Code.NO_PENDING_GIFT
        if gift.status == "pending" and gift.expires_at > now:
            return Code.OK
        if gift.status == "expired" or gift.status == "pending":
            return Code.GIFT_EXPIRED
        return Code.GIFT_NOT_PENDING


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(ZONE).date(), datetime.min.time(), tzinfo=ZONE)


# -- the machine ------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    runner: LoopThread
    pool: asyncpg.Pool

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
        self.ctx: dict[str, Any] = {"clock": self.clock, "settings": SETTINGS}
        self.model = Model()
        self.keys = 0
        # key -> (call, first outcome) for replays.
        self.done: list[tuple[str, Any, Outcome[Any]]] = []
        self.run(self.pool.execute(_RESET))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def snapshot(self) -> list[Any]:
        async def read() -> list[Any]:
            async with self.pool.acquire() as conn:
                return [
                    [tuple(r) for r in await conn.fetch(q)]
                    for q in (
                        "SELECT id, balance FROM accounts ORDER BY id",
                        "SELECT count(*) FROM postings",
                        "SELECT id, remaining FROM point_lots ORDER BY id",
                        "SELECT id, status FROM gifts ORDER BY id",
                        "SELECT id, status FROM redemptions ORDER BY id",
                        "SELECT count(*) FROM outbox",
                        "SELECT msisdn, status FROM subscribers ORDER BY id",
                    )
                ]

        return self.run(read())

    def call(self, name: str, expected: Code, factory: Any) -> Outcome[Any]:
        """Run a mutating operation; a rejection must leave the database as it was."""
        STATS["steps"] = STATS.get("steps", 0) + 1
        request_key = self.key()
        before = self.snapshot() if expected is not Code.OK else None
        outcome: Outcome[Any] = self.run(factory(request_key))
        assert outcome.code is expected, (name, outcome, expected)
        STATS[f"{name}:{outcome.code.value}"] = STATS.get(f"{name}:{outcome.code.value}", 0) + 1
        if before is not None:
            assert self.snapshot() == before, f"rejected {name} changed the database"
        self.done.append((request_key, factory, outcome))
        return outcome

    # -- rules --------------------------------------------------------------------------

    @initialize()
    def members(self) -> None:
        """Most examples are about moving points: start with three members holding some."""
        for number in NUMBERS[:3]:
            self.enroll(number)
            self.accrue(number, 600, 10, 0)

    # Once every number is active, enrolling again only repeats already_enrolled.
    @precondition(lambda self: any(self.model.status.get(n) != "active" for n in NUMBERS))
    @rule(who=st.sampled_from(NUMBERS))
    def enroll(self, who: str) -> None:
        state = self.model.status.get(who)
        expected = {
            None: Code.OK, "not_enrolled": Code.OK, "active": Code.ALREADY_ENROLLED,
            "blocked": Code.BLOCKED,
        }[state]  # fmt: skip
        self.call("enroll", expected, lambda k: ledger.enroll(self.pool, who, key=k, **self.ctx))
        if expected is Code.OK:
            self.model.status[who] = "active"
            self.model.lots.setdefault(who, [])

    # At most one block per example, and only once three numbers are known: a
    # blocked subscriber is mostly stuck, and the rest of the run should move points.
    @precondition(
        lambda self: len(self.model.status) >= 3 and "blocked" not in self.model.status.values()
    )
    @rule(who=st.sampled_from(NUMBERS))
    def block(self, who: str) -> None:
        self.call("block", Code.OK, lambda k: ledger.block(self.pool, who, key=k, **self.ctx))
        self.model.status[who] = "blocked"
        # Gifts pending to them (even past expiry, not yet swept) go back to their senders.
        for g in self.model.gifts.values():
            if g.recipient == who and g.status == "pending":
                g.status = "declined"
                Model.give_back(g.shares)
        self.model.lots.setdefault(who, [])

    @rule(
        who=st.sampled_from(NUMBERS),
        points=st.integers(1, 400),
        days=st.integers(1, 20),
        hours=st.integers(0, 23),
    )
    def accrue(self, who: str, points: int, days: int, hours: int) -> None:
        expires_at = self.now + timedelta(days=days, hours=hours)
        expected = self.model.enrolled_code(who)
        self.call(
            "accrue",
            expected,
            lambda k: ledger.accrue(
                self.pool, who, points, key=k, expires_at=expires_at, **self.ctx
            ),
        )
        if expected is Code.OK:
            self.model.new_lot(who, points, expires_at)

    @rule(who=st.sampled_from(NUMBERS), reward=st.sampled_from(sorted(REWARDS)))
    def redeem(self, who: str, reward: str) -> None:
        price = REWARDS[reward]
        expected = self.model.enrolled_code(who)
        if expected is Code.OK and price is None:
            expected = Code.UNKNOWN_REWARD
        if (
            expected is Code.OK
            and price is not None
            and self.model.available(who, self.now) < price
        ):
            expected = Code.INSUFFICIENT_POINTS
        outcome = self.call(
            "redeem",
            expected,
            lambda k: ledger.redeem(self.pool, who, reward, key=k, **self.ctx),
        )
        if expected is Code.OK and price is not None:
            shares = self.model.take(who, price, self.now)
            value = outcome.unwrap()
            self.model.redemptions[value.redemption_id] = MRedemption(who, price, shares)
            assert value.available == self.model.available(who, self.now)

    @precondition(lambda self: bool(self.model.redemptions))
    @rule(data=st.data(), fulfil=st.booleans())
    def settle_redemption(self, data: st.DataObject, fulfil: bool) -> None:
        ids = [*sorted(self.model.redemptions), 10_000]
        rid = data.draw(st.sampled_from(ids))
        found = self.model.redemptions.get(rid)
        if found is None:
            expected = Code.UNKNOWN_REDEMPTION
        elif found.status != "reserved":
            expected = Code.REDEMPTION_NOT_RESERVED
        else:
            expected = Code.OK
        op = ledger.fulfil_redemption if fulfil else ledger.fail_redemption
        self.call("settle", expected, lambda k: op(self.pool, rid, key=k, **self.ctx))
        if found is not None and expected is Code.OK:
            found.status = "fulfilled" if fulfil else "failed"
            if not fulfil:
                Model.give_back(found.shares)

    @rule(
        pair=st.sampled_from(GIFT_PAIRS),
        points=st.sampled_from([50, 120, 10, 300, 0, 5, 301]),
    )
    # Rules are picked in name order with a bias to the first ones; the "a1_"/"a2_"
    # prefixes make gifts and their answers as frequent as the simpler rules.
    def a1_gift(self, pair: tuple[str, str], points: int) -> None:
        sender, recipient = pair
        m = self.model
        expected = m.enrolled_code(sender)
        if expected is Code.OK:
            sent_today = sum(
                g.points
                for g in m.gifts.values()
                if g.sender == sender and g.created_at >= day_start(self.now)
                and g.status != "cancelled"
            )  # fmt: skip
            if recipient == "123":
                expected = Code.INVALID_RECIPIENT
            elif recipient == sender:
                expected = Code.SELF_GIFT
            elif points < SETTINGS.gift_min_points:
                expected = Code.BELOW_MINIMUM
            elif points > SETTINGS.gift_max_points:
                expected = Code.ABOVE_MAXIMUM
            elif m.status.get(recipient) != "active":
                expected = Code.RECIPIENT_NOT_ENROLLED
            elif sent_today + points > SETTINGS.gift_daily_cap_points:
                expected = Code.DAILY_CAP_EXCEEDED
            elif m.available(sender, self.now) < points:
                expected = Code.INSUFFICIENT_POINTS
        outcome = self.call(
            "gift",
            expected,
            lambda k: ledger.gift(self.pool, sender, recipient, points, key=k, **self.ctx),
        )
        if expected is Code.OK:
            shares = m.take(sender, points, self.now)
            value = outcome.unwrap()
            m.gifts[value.gift_id] = MGift(
                sender, recipient, points, self.now, self.now + SETTINGS.gift_ttl, shares
            )
            assert value.available == m.available(sender, self.now)

    def _target(self, data: st.DataObject, party: str) -> tuple[str, int | None]:
        """Who answers which gift: mostly a pending gift by its own party, sometimes
        "the oldest" (None), sometimes any gift by anyone (mostly rejections)."""
        mode = data.draw(st.sampled_from(["pending", "oldest", "any"]))
        pending = sorted(gid for gid, g in self.model.gifts.items() if g.status == "pending")
        if mode == "pending" and pending:
            gift_id = data.draw(st.sampled_from(pending))
            return getattr(self.model.gifts[gift_id], party), gift_id
        who = data.draw(st.sampled_from(NUMBERS))
        if mode == "oldest" and party == "recipient":
            return who, None
        return who, data.draw(st.sampled_from([*sorted(self.model.gifts), 9_999]))

    @precondition(lambda self: bool(self.model.gifts))
    @rule(data=st.data(), accept=st.booleans())
    def a2_answer_gift(self, data: st.DataObject, accept: bool) -> None:
        m = self.model
        who, asked = self._target(data, "recipient")
        if who not in m.status:
            expected = Code.NO_PENDING_GIFT
        elif asked is None:
            expected = Code.OK if m.pending_in(who, self.now) else Code.NO_PENDING_GIFT
        else:
            expected = m.gift_code(asked, "recipient", who, self.now)
        op = ledger.accept_gift if accept else ledger.decline_gift
        outcome = self.call(
            "accept" if accept else "decline",
            expected,
            lambda k: op(self.pool, who, asked, key=k, **self.ctx),
        )
        if outcome.ok:
            gift_id = outcome.unwrap().gift_id
            if asked is None:
                assert gift_id == m.pending_in(who, self.now)[0][0]
            g = m.gifts[gift_id]
            if accept:
                g.status = "accepted"
                for lot, part in g.shares:
                    m.new_lot(who, part, lot.expires_at)
            else:
                g.status = "declined"
                Model.give_back(g.shares)
            assert outcome.data["remaining"] == len(m.pending_in(who, self.now))

    @precondition(lambda self: bool(self.model.gifts))
    @rule(data=st.data())
    def cancel_gift(self, data: st.DataObject) -> None:
        m = self.model
        who, gift_id = self._target(data, "sender")
        assert gift_id is not None
        expected = (
            Code.NO_PENDING_GIFT
            if who not in m.status
            else m.gift_code(gift_id, "sender", who, self.now)
        )
        self.call(
            "cancel",
            expected,
            lambda k: ledger.cancel_gift(self.pool, who, gift_id, key=k, **self.ctx),
        )
        if expected is Code.OK:
            g = m.gifts[gift_id]
            g.status = "cancelled"
            Model.give_back(g.shares)

    @rule(hours=st.sampled_from([1, 5, 24, 49, 73, 24 * 7]))
    def advance_clock(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @rule()
    def expire_gifts(self) -> None:
        due = [g for g in self.model.gifts.values() if g.status == "pending"
               and g.expires_at <= self.now]  # fmt: skip
        assert self.run(ledger.expire_gifts(self.pool, **self.ctx)) == len(due)
        for g in due:
            g.status = "expired"
            Model.give_back(g.shares)

    @rule()
    def expire_points(self) -> None:
        expected = 0
        for lots in self.model.lots.values():
            for lot in lots:
                if lot.expires_at <= self.now and lot.remaining > 0:
                    expected += lot.remaining
                    lot.remaining = 0
        assert self.run(ledger.expire_points(self.pool, **self.ctx)) == expected

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        request_key, factory, first = data.draw(st.sampled_from(self.done))
        before = self.snapshot()
        again: Outcome[Any] = self.run(factory(request_key))
        assert again == first
        assert again.replayed
        assert self.snapshot() == before

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def ledger_is_sound(self) -> None:
        assert self.run(ledger.check(self.pool)) == []

    @invariant()
    def balances_match_the_model(self) -> None:
        async def read() -> dict[str, Outcome[ledger.Balance]]:
            return {n: await ledger.balance(self.pool, n, **self.ctx) for n in NUMBERS}

        now = self.now
        for number, outcome in self.run(read()).items():
            assert outcome.code is self.model.enrolled_code(number), number
            if not outcome.ok:
                continue
            bal = outcome.unwrap()
            live = self.model.live(number, now)
            first_day = live[0].expires_at.astimezone(ZONE).date() if live else None
            expected = (
                self.model.available(number, now),
                sum(g.points for _, g in self.model.pending_in(number, now)),
                sum(g.points for g in self.model.gifts.values()
                    if g.sender == number and g.status == "pending")
                + sum(r.points for r in self.model.redemptions.values()
                      if r.who == number and r.status == "reserved"),
                sum(lot.remaining for lot in live
                    if lot.expires_at.astimezone(ZONE).date() == first_day),
                live[0].expires_at if live else None,
            )  # fmt: skip
            actual = (
                bal.available, bal.pending_in, bal.pending_out, bal.expiring_points,
                bal.expiring_at,
            )  # fmt: skip
            assert actual == expected, number


@pytest.fixture
def model_pool(database_url: str) -> Iterator[tuple[LoopThread, asyncpg.Pool]]:
    runner = LoopThread()

    async def open_pool() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        assert pool is not None
        return pool

    pool = runner.run(open_pool())
    runner.run(ledger.load_catalog(pool, settings=SETTINGS))
    try:
        yield runner, pool
    finally:
        runner.run(pool.close())
        runner.close()


def test_ledger_matches_the_model(model_pool: tuple[LoopThread, asyncpg.Pool]) -> None:
    LedgerMachine.runner, LedgerMachine.pool = model_pool
    machine_test = get_state_machine_test(
        LedgerMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    seed(20250301)(machine_test)()
    print(sorted(STATS.items()))  # shown with -s
