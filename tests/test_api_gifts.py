"""POST /v1/gifts/{id}/cancel over real HTTP, against the real ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

import ledger
from ussd_service.app import create_app
from ussd_service.config import Settings

SENDER = "+79161234567"
RECIPIENT = "+79167654321"


async def _gift(
    pool: asyncpg.Pool, points: int = 100, key: str = "g-1", clock: ledger.Clock | None = None
) -> int:
    at = {"clock": clock or ledger.SYSTEM_CLOCK}
    for number in (SENDER, RECIPIENT):
        await ledger.enroll(pool, number, key=f"enroll-{number}", **at)
    await ledger.accrue(pool, SENDER, 500, key=f"accrue-{key}", reason="test", **at)
    return (await ledger.gift(pool, SENDER, RECIPIENT, points, key=key, **at)).unwrap().gift_id


async def _events(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    wanted = ("gift_returned", "gift_cancelled")
    return [(m.event, m.msisdn) for m in await ledger.list_outbox(pool) if m.event in wanted]


async def test_cancel_returns_the_points_once_however_often_retried(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    gift_id = await _gift(pg_pool)
    first = await client.post(f"/v1/gifts/{gift_id}/cancel")
    assert first.status == 200, await first.text()
    body = await first.json()
    assert body == {"gift_id": gift_id, "points": 100, "recipient": RECIPIENT, "available": 500}
    # The operator's tool retries (no key: one per gift), and again with an empty body.
    again = await client.post(f"/v1/gifts/{gift_id}/cancel")
    assert again.status == 200
    assert await again.json() == body
    empty = await client.post(
        f"/v1/gifts/{gift_id}/cancel", data=b"", headers={"Content-Type": "application/json"}
    )
    assert await empty.json() == body
    summary = await ledger.subscriber_summary(pg_pool, SENDER)
    assert summary is not None
    assert summary.balance.available == 500
    assert summary.balance.pending_out == 0
    # Both sides told, once each.
    assert await _events(pg_pool) == [("gift_returned", SENDER), ("gift_cancelled", RECIPIENT)]
    assert await ledger.check(pg_pool) == []


async def test_the_sender_when_given_must_be_the_gifts(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    gift_id = await _gift(pg_pool)
    other = await client.post(f"/v1/gifts/{gift_id}/cancel", json={"msisdn": RECIPIENT})
    assert other.status == 404
    assert (await other.json())["error"] == "no such gift from this msisdn"
    resp = await client.post(
        f"/v1/gifts/{gift_id}/cancel",
        json={"msisdn": "8 916 123-45-67"},
        headers={"Idempotency-Key": "console-42"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["available"] == 500


@pytest.mark.parametrize(
    ("resolve", "status"),
    [("accept", "accepted"), ("decline", "declined"), ("cancel", "cancelled")],
)
async def test_a_gift_no_longer_pending_is_a_409_that_says_why(
    client: TestClient, pg_pool: asyncpg.Pool, resolve: str, status: str
) -> None:
    gift_id = await _gift(pg_pool)
    if resolve == "accept":
        assert (await ledger.accept_gift(pg_pool, RECIPIENT, gift_id, key="a")).ok
    elif resolve == "decline":
        assert (await ledger.decline_gift(pg_pool, RECIPIENT, gift_id, key="d")).ok
    else:
        assert (await ledger.cancel_gift(pg_pool, SENDER, gift_id, key="c")).ok
    available = (await ledger.balance(pg_pool, SENDER)).unwrap().available
    resp = await client.post(f"/v1/gifts/{gift_id}/cancel")
    assert resp.status == 409
    assert await resp.json() == {
        "error": f"the gift is no longer pending: {status}",
        "code": "gift_not_pending",
        "status": status,
    }
    assert (await ledger.balance(pg_pool, SENDER)).unwrap().available == available
    assert await ledger.check(pg_pool) == []


async def test_an_expired_gift_is_a_409_before_and_after_the_sweeper(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    # Sent long enough ago to be past its expiry now.
    past = datetime.now(UTC) - ledger.DEFAULT_SETTINGS.gift_ttl - timedelta(minutes=1)
    gift_id = await _gift(pg_pool, clock=ledger.ManualClock(past))
    before = await client.post(f"/v1/gifts/{gift_id}/cancel", headers={"Idempotency-Key": "k1"})
    assert before.status == 409
    assert (await before.json())["status"] == "expired"
    assert await ledger.expire_gifts(pg_pool) == 1
    after = await client.post(f"/v1/gifts/{gift_id}/cancel", headers={"Idempotency-Key": "k2"})
    assert after.status == 409
    assert (await after.json())["status"] == "expired"
    assert (await ledger.balance(pg_pool, SENDER)).unwrap().available == 500
    assert await ledger.check(pg_pool) == []


async def test_unknown_and_malformed_ids(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    gift_id = await _gift(pg_pool)
    missing = await client.post(f"/v1/gifts/{gift_id + 1000}/cancel")
    assert missing.status == 404
    assert (await missing.json())["error"] == "no such gift"
    for raw in ("abc", "-1", "1.5", "%EF%BC%91", "1" * 19):
        resp = await client.post(f"/v1/gifts/{raw}/cancel")
        assert resp.status == 400, raw
        assert (await resp.json())["error"] == "id must be a gift number (digits only)"
    bad_number = await client.post(f"/v1/gifts/{gift_id}/cancel", json={"msisdn": "12"})
    assert bad_number.status == 400
    assert (await bad_number.json())["error"] == "msisdn is not a valid phone number"
    extra = await client.post(f"/v1/gifts/{gift_id}/cancel", json={"points": 5})
    assert extra.status == 400
    assert "points" in (await extra.json())["error"]
    # Nothing above moved a point.
    assert (await ledger.sent_gifts(pg_pool, SENDER)).unwrap().count == 1


async def test_a_key_reused_for_another_gift_is_refused(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    first = await _gift(pg_pool, 100, "g-1")
    second = (await ledger.gift(pg_pool, SENDER, RECIPIENT, 50, key="g-2")).unwrap().gift_id
    headers = {"Idempotency-Key": "same"}
    assert (await client.post(f"/v1/gifts/{first}/cancel", headers=headers)).status == 200
    reused = await client.post(f"/v1/gifts/{second}/cancel", headers=headers)
    assert reused.status == 409
    assert (await reused.json())["error"] == "idempotency_conflict"
    assert [g.gift_id for g in (await ledger.sent_gifts(pg_pool, SENDER)).unwrap().items] == [
        second
    ]


async def test_the_api_token_guards_it(settings: Settings, redis_client: object) -> None:
    token = "s3cret-token-0123456789"
    app = create_app(settings.model_copy(update={"api_token": token}), background=False)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/v1/gifts/1/cancel")).status == 401
        good = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/v1/gifts/1/cancel", headers=good)).status == 404
