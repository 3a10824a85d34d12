"""POST /v1/events over real HTTP against the real ledger: the earning rules applied once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

import ledger
from ledger.points import add_months
from ussd_service.app import create_app
from ussd_service.config import Settings

NUMBER = "+79161234567"
MOSCOW = ZoneInfo("Europe/Moscow")
RULES = """\
version: 1
rules:
  topup:
    kind: topup
    points_per_rouble: 0.1
    rounding: down
    validity_months: 12
    caps: {per_event: 500, per_month: 600}
  promo:
    kind: topup
    points_per_rouble: 0.05
    rounding: half_up
    validity_months: 3
  tenure:
    kind: tenure
    points_per_month: 20
    validity_months: 12
  welcome:
    kind: joined
    points: 100
    validity_months: 6
"""


@pytest.fixture
async def client(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[TestClient]:
    """The app on this test's rules file (real sockets, real servers)."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    app = create_app(settings.model_copy(update={"earning_rules_file": path}), background=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def event(kind: str = "topup", amount: Any = "159.90", key: str = "e1", **more: Any) -> dict:
    body = {
        "msisdn": "8 916 123-45-67",
        "kind": kind,
        "amount": amount,
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "idempotency_key": key,
        **more,
    }
    return {k: v for k, v in body.items() if v is not None}


def end_of_day_after(moment: str, months: int) -> str:
    """The programme's calendar day ``months`` after ``moment``."""
    return add_months(datetime.fromisoformat(moment).astimezone(MOSCOW), months).date().isoformat()


async def available(pool: asyncpg.Pool) -> int:
    return (await ledger.balance(pool, NUMBER)).unwrap().available


async def test_a_top_up_earns_by_every_rule_once(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    body = event(amount=159.90)
    first = await client.post("/v1/events", json=body)
    assert first.status == 201, await first.text()
    data = await first.json()
    # 15.99 rounded down; 7.995 rounded half up.
    assert [(a["rule"], a["points"]) for a in data["accruals"]] == [("topup", 15), ("promo", 8)]
    assert (data["msisdn"], data["kind"], data["points"], data["available"]) == (
        NUMBER,
        "topup",
        23,
        23,
    )
    expiries = [a["expires_at"][:10] for a in data["accruals"]]
    assert expiries == [
        end_of_day_after(body["occurred_at"], 12),
        end_of_day_after(body["occurred_at"], 3),
    ]

    # The gateway retries, even written differently: the same answer, nothing moves.
    again = await client.post("/v1/events", json={**body, "amount": "159.9"})
    assert again.status == 201
    assert await again.json() == data
    assert await available(pg_pool) == 23
    # The same key for another event is refused and moves nothing.
    other = await client.post("/v1/events", json={**body, "amount": 200})
    assert other.status == 409
    assert (await other.json())["error"] == "idempotency_conflict"
    assert await available(pg_pool) == 23
    assert await ledger.check(pg_pool) == []


async def test_concurrent_retries_credit_once(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    body = event(kind="tenure", amount=3, key="t1")
    answers = await asyncio.gather(*(client.post("/v1/events", json=body) for _ in range(6)))
    assert {r.status for r in answers} == {201}
    datas = [await r.json() for r in answers]
    assert all(d == datas[0] for d in datas)
    assert datas[0]["accruals"][0]["points"] == 60
    assert await available(pg_pool) == 60
    assert await pg_pool.fetchval("SELECT count(*) FROM earnings") == 1


async def test_caps_per_event_and_per_month(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    now = datetime.now(MOSCOW)
    # Mid-month of the previous month: events of one calendar month.
    month = (now.replace(day=1) - timedelta(days=1)).replace(day=10, hour=12)
    at = month.isoformat()

    big = await (
        await client.post("/v1/events", json=event(amount=10_000, key="c1", occurred_at=at))
    ).json()
    assert big["accruals"][0] == {
        "rule": "topup",
        "points": 500,
        "expires_at": big["accruals"][0]["expires_at"],
        "capped": "per-event cap of 500 points",
    }
    second = await (
        await client.post("/v1/events", json=event(amount=2000, key="c2", occurred_at=at))
    ).json()
    assert second["accruals"][0]["points"] == 100
    assert second["accruals"][0]["capped"] == "monthly cap of 600 points reached"
    third = await (
        await client.post("/v1/events", json=event(amount=100, key="c3", occurred_at=at))
    ).json()
    assert third["skipped"] == [{"rule": "topup", "reason": "monthly cap of 600 points reached"}]
    assert [a["rule"] for a in third["accruals"]] == ["promo"]
    # This month starts afresh.
    fresh = await (await client.post("/v1/events", json=event(amount=100, key="c4"))).json()
    assert fresh["accruals"][0]["points"] == 10
    assert await ledger.check(pg_pool) == []


async def test_the_joining_bonus_is_granted_once(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    first = await client.post("/v1/events", json=event("joined", None, key="j1"))
    assert first.status == 201
    assert (await first.json())["points"] == 100
    second = await client.post("/v1/events", json=event("joined", 0, key="j2"))
    assert second.status == 201
    data = await second.json()
    assert (data["points"], data["accruals"]) == (0, [])
    assert data["skipped"] == [
        {"rule": "welcome", "reason": "the joining bonus is granted once per member"}
    ]
    assert await available(pg_pool) == 100


async def test_a_small_top_up_says_why_it_earns_nothing(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    resp = await client.post("/v1/events", json=event(amount="5.50", key="s1"))
    assert resp.status == 201
    data = await resp.json()
    # 0.55 rounded down and 0.275 rounded half up: nothing, and the answer says so.
    assert (data["points"], data["accruals"]) == (0, [])
    assert data["skipped"] == [
        {"rule": "topup", "reason": "less than one point"},
        {"rule": "promo", "reason": "less than one point"},
    ]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"msisdn": None}, "msisdn: Field required"),
        ({"kind": "birthday"}, "kind:"),
        ({"amount": -5}, "amount: Input should be greater than or equal to 0"),
        ({"amount": "1e400"}, "amount:"),
        ({"amount": "NaN"}, "amount:"),
        ({"amount": 1.234}, "amount: Decimal input should have no more than 2 decimal places"),
        ({"amount": None}, "amount: required for topup"),
        ({"kind": "tenure", "amount": 1.5}, "amount: tenure is a whole number of months"),
        ({"kind": "joined", "amount": 10}, "amount: a joined event takes no amount"),
        ({"occurred_at": "2025-13-45T10:00:00Z"}, "occurred_at:"),
        ({"occurred_at": "2025-01-10T10:00:00"}, "occurred_at: Input should have timezone info"),
        ({"occurred_at": "9999-12-31T23:59:59Z"}, "occurred_at: in the future"),
        ({"occurred_at": "0001-01-01T00:00:00+05:00"}, "occurred_at: too old"),
        ({"idempotency_key": ""}, "idempotency_key:"),
        ({"msisdn": "12"}, "msisdn: not a valid phone number"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
async def test_bad_events_get_a_400_that_says_why(
    client: TestClient, pg_pool, change: dict, says: str
) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    body = {**event(), **change}
    body = {k: v for k, v in body.items() if v is not None}
    resp = await client.post("/v1/events", json=body)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"].startswith(says)
    assert await pg_pool.fetchval("SELECT count(*) FROM earnings") == 0


async def test_an_event_too_old_to_earn_is_refused(client: TestClient, pg_pool) -> None:
    assert (await ledger.enroll(pg_pool, NUMBER, key="join")).ok
    old = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    resp = await client.post("/v1/events", json=event(occurred_at=old))
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("occurred_at: too old to earn points")
    # Nothing is recorded under the key: the corrected event goes through.
    fixed = await client.post("/v1/events", json=event())
    assert fixed.status == 201


async def test_non_members_get_a_409(client: TestClient, pg_pool) -> None:
    never = await client.post("/v1/events", json=event())
    assert never.status == 409
    assert (await never.json())["error"] == "not_enrolled"
    # Known but not enrolled (chose a language only): the same.
    assert (await ledger.set_language(pg_pool, "+79161234568", "en", key="l")).ok
    known = await client.post("/v1/events", json=event(msisdn="+79161234568", key="e2"))
    assert known.status == 409
    assert await pg_pool.fetchval("SELECT count(*) FROM point_lots") == 0


async def test_without_a_rules_file_events_get_a_503(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    app = create_app(
        settings.model_copy(update={"earning_rules_file": tmp_path / "absent.yaml"}),
        background=False,
    )
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/v1/events", json=event())
        assert resp.status == 503
        assert "earning rules" in (await resp.json())["error"]


async def test_the_endpoint_is_described(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    post = spec["paths"]["/v1/events"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["kind"]["enum"] == ["topup", "tenure", "joined"]
    assert {"201", "400", "409"} <= set(post["responses"])
