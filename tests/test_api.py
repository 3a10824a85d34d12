"""The operator/admin API over real HTTP, against the real ledger."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

import ledger
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.handoffs import HandoffRequest, record_handoff

NUMBER = "+79161234567"


class Later:
    """A provisioning system that will call back (the test plays the callback)."""

    async def submit(self, redemption: ledger.Redemption) -> None:
        assert redemption.status == "reserved"


async def test_accrual_then_subscriber_and_history(client: TestClient, pg_pool) -> None:
    resp = await client.get("/v1/subscribers/8 916 123-45-67")
    assert resp.status == 404

    resp = await client.post("/v1/subscribers/89161234567/enrollment")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "active"
    # A retry (same idempotency key) gets the first answer; a new request is
    # answered with the existing enrolment (tests/test_api_enrollment_blocking.py).
    repeat = await client.post("/v1/subscribers/89161234567/enrollment")
    assert repeat.status == 200
    again = await client.post(
        "/v1/subscribers/89161234567/enrollment", headers={"Idempotency-Key": "second"}
    )
    assert again.status == 200
    assert (await again.json())["already"] is True

    body = {"msisdn": "+7 916 123-45-67", "points": 250, "reason": "bill", "idempotency_key": "b1"}
    first = await client.post("/v1/accruals", json=body)
    again = await client.post("/v1/accruals", json=body)
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    conflict = await client.post("/v1/accruals", json={**body, "points": 300})
    assert conflict.status == 409
    assert (await conflict.json())["error"] == "idempotency_conflict"

    resp = await client.get(f"/v1/subscribers/{NUMBER}")
    data = await resp.json()
    assert resp.status == 200
    assert data["msisdn"] == NUMBER
    assert data["status"] == "active"
    assert data["balance"] == {"available": 250, "pending_in": 0, "pending_out": 0}
    assert data["expiring"]["points"] == 250

    history = await (await client.get(f"/v1/subscribers/{NUMBER}/history?limit=5")).json()
    assert [item["points"] for item in history["items"]] == [250]
    assert (await client.get(f"/v1/subscribers/{NUMBER}/history?limit=0")).status == 400
    assert await ledger.check(pg_pool) == []


async def test_bad_bodies_get_a_400_that_says_what_is_wrong(client: TestClient) -> None:
    resp = await client.post(
        "/v1/accruals", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await client.post(
        "/v1/accruals", json={"msisdn": NUMBER, "points": -5, "reason": "x", "idempotency_key": "k"}
    )
    assert resp.status == 400
    assert "points" in (await resp.json())["error"]
    resp = await client.post(
        "/v1/accruals", json={"msisdn": "12", "points": 5, "reason": "x", "idempotency_key": "k"}
    )
    assert resp.status == 400
    assert (await client.get("/v1/subscribers/not-a-number")).status == 400
    # A number never enrolled cannot receive points.
    resp = await client.post(
        "/v1/accruals", json={"msisdn": NUMBER, "points": 5, "reason": "x", "idempotency_key": "k"}
    )
    assert resp.status == 409
    assert (await resp.json())["error"] == "not_enrolled"


async def test_provisioning_callbacks_settle_a_redemption_once(client: TestClient, pg_pool) -> None:
    await ledger.load_catalog(pg_pool)
    await ledger.enroll(pg_pool, NUMBER, key="e")
    await ledger.accrue(pg_pool, NUMBER, 10_000, key="a")
    catalog = (await ledger.list_catalog(pg_pool)).unwrap()
    reward = min(catalog.items, key=lambda item: item.price)
    # A provisioner that answers later: the points stay reserved until the callback.
    redemption = (
        await ledger.redeem(pg_pool, NUMBER, reward.code, key="r", provisioner=Later())
    ).unwrap()
    rid = redemption.redemption_id

    failed = await client.post(f"/v1/redemptions/{rid}/failed", json={"reason": "out of stock"})
    assert failed.status == 200, await failed.text()
    repeat = await client.post(f"/v1/redemptions/{rid}/failed", json={"reason": "out of stock"})
    assert repeat.status == 200
    assert await repeat.json() == await failed.json()
    late = await client.post(f"/v1/redemptions/{rid}/fulfilled")
    assert late.status == 409
    assert (await client.post("/v1/redemptions/999999/fulfilled")).status == 404
    summary = await ledger.subscriber_summary(pg_pool, NUMBER)
    assert summary is not None
    assert summary.balance.available == 10_000
    assert await ledger.check(pg_pool) == []


async def test_handoffs_list_claim_close(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    request = HandoffRequest(
        key="k1",
        msisdn=NUMBER,
        channel="ivr",
        language="ru",
        reason="caller_request",
        breadcrumb=["main:5", "pending:0"],
    )
    first = await record_handoff(pg_pool, request)
    assert await record_handoff(pg_pool, request) == first  # once per key
    items = (await (await client.get("/v1/handoffs?status=waiting")).json())["items"]
    assert [(i["id"], i["msisdn"], i["breadcrumb"]) for i in items] == [
        (first, NUMBER, ["main:5", "pending:0"])
    ]
    claim = await client.post(f"/v1/handoffs/{first}/claim", headers={"X-Operator": "anna"})
    assert claim.status == 200
    assert (await claim.json())["claimed_by"] == "anna"
    assert (await client.post(f"/v1/handoffs/{first}/claim")).status == 409
    assert (await client.post(f"/v1/handoffs/{first}/close")).status == 200
    assert (await client.post(f"/v1/handoffs/{first}/close")).status == 409
    assert (await client.post("/v1/handoffs/777/close")).status == 404
    assert (await client.get("/v1/handoffs?status=lost")).status == 400
    assert (await (await client.get("/v1/handoffs?status=waiting")).json())["items"] == []


async def test_api_token_is_required_when_configured(settings: Settings, redis_client) -> None:
    token = "s3cret-token-0123456789"
    app = create_app(settings.model_copy(update={"api_token": token}), background=False)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/v1/handoffs")).status == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/v1/handoffs", headers=wrong)).status == 401
        good = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/v1/handoffs", headers=good)).status == 200


async def test_header_values_are_checked_not_cut(client: TestClient, pg_pool) -> None:
    """An idempotency key longer than allowed is refused (cutting it could merge two keys)."""
    long_key = {"Idempotency-Key": "k" * 129}
    resp = await client.post(f"/v1/subscribers/{NUMBER}/enrollment", headers=long_key)
    assert resp.status == 400
    assert "Idempotency-Key" in (await resp.json())["error"]
    assert await ledger.get_subscriber(pg_pool, NUMBER) is None
    ok = await client.post(f"/v1/subscribers/{NUMBER}/enrollment", headers={"Idempotency-Key": "k"})
    assert ok.status == 200
    # An operator's display name is only shortened.
    handoff = await record_handoff(
        pg_pool,
        HandoffRequest(
            key="h", msisdn=NUMBER, channel="ussd", language="ru", reason="r", breadcrumb=[]
        ),
    )
    claim = await client.post(f"/v1/handoffs/{handoff}/claim", headers={"X-Operator": "a" * 100})
    assert claim.status == 200
    assert (await claim.json())["claimed_by"] == "a" * 64
