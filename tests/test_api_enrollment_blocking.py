"""POST /v1/subscribers/{n}/enrollment (how they joined), /block and /unblock, over real HTTP."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

import ledger

NUMBER = "+79161234567"
FRIEND = "+79167654321"


async def welcomes(pool: asyncpg.Pool) -> list[ledger.OutboxMessage]:
    return [m for m in await ledger.list_outbox(pool) if m.event == "welcome"]


async def test_enrollment_records_how_and_a_repeat_is_harmless(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    body = {"channel": "shop", "staff_id": "shop-17/anna", "document_checked": True}
    first = await client.post("/v1/subscribers/8 916 123-45-67/enrollment", json=body)
    assert first.status == 200, await first.text()
    joined = await first.json()
    assert joined["msisdn"] == NUMBER
    assert (joined["status"], joined["already"]) == ("active", False)
    assert (joined["channel"], joined["staff_id"], joined["document_checked"]) == (
        "shop", "shop-17/anna", True,
    )  # fmt: skip
    # The same call again (no key: the same request is the same operation).
    retry = await client.post(f"/v1/subscribers/{NUMBER}/enrollment", json=body)
    assert (retry.status, await retry.json()) == (200, joined)
    # Another way in later: the existing enrolment, no second record, no second welcome.
    other = await client.post(
        f"/v1/subscribers/{NUMBER}/enrollment",
        json={"channel": "web"},
        headers={"Idempotency-Key": "web-1"},
    )
    assert other.status == 200
    existing = await other.json()
    assert existing["already"] is True
    assert (existing["channel"], existing["staff_id"], existing["enrolled_at"]) == (
        "shop", "shop-17/anna", joined["enrolled_at"],
    )  # fmt: skip
    assert len(await welcomes(pg_pool)) == 1

    shown = await (await client.get(f"/v1/subscribers/{NUMBER}")).json()
    assert shown["enrollment"] == {
        "channel": "shop",
        "staff_id": "shop-17/anna",
        "document_checked": True,
        "enrolled_at": joined["enrolled_at"],
    }
    assert shown["block"] is None


async def test_enrollment_without_a_body_is_self_service(client: TestClient) -> None:
    resp = await client.post(f"/v1/subscribers/{NUMBER}/enrollment")
    assert resp.status == 200
    data = await resp.json()
    assert (data["channel"], data["staff_id"], data["document_checked"]) == ("self", None, None)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"channel": "kiosk"}, "channel: Input should be 'self', 'shop', 'help_desk' or 'web'"),
        ({"channel": "shop"}, "staff_id is required when channel is shop"),
        ({"channel": "help_desk", "document_checked": True}, "staff_id is required"),
        ({"channel": "help_desk", "staff_id": ""}, "staff_id: String should have at least 1"),
        ({"channel": "shop", "staff_id": "s" * 65}, "staff_id: String should have at most 64"),
        ({"channel": "shop", "staff_id": 17}, "staff_id: Input should be a valid string"),
        ({"document_checked": "yes"}, "document_checked: Input should be a valid boolean"),
        ({"document_checked": 1}, "document_checked: Input should be a valid boolean"),
        ({"channel": "self", "who": "me"}, "who: Extra inputs are not permitted"),
        ([], "Input should be an object"),
    ],
)
async def test_enrollment_bodies_are_checked(
    client: TestClient, pg_pool: asyncpg.Pool, body: Any, says: str
) -> None:
    resp = await client.post(f"/v1/subscribers/{NUMBER}/enrollment", json=body)
    assert resp.status == 400
    assert says in (await resp.json())["error"]
    assert await ledger.get_subscriber(pg_pool, NUMBER) is None
    assert await welcomes(pg_pool) == []


async def test_a_malformed_body_and_a_blocked_number(client: TestClient) -> None:
    resp = await client.post(
        f"/v1/subscribers/{NUMBER}/enrollment",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    blocked = await client.post(f"/v1/subscribers/{NUMBER}/block", json={"reason": "fraud"})
    assert blocked.status == 200
    resp = await client.post(f"/v1/subscribers/{NUMBER}/enrollment")
    assert (resp.status, (await resp.json())["error"]) == (409, "blocked")


async def member(pool: asyncpg.Pool, number: str, points: int) -> None:
    assert (await ledger.enroll(pool, number, key=f"e-{number}")).ok
    assert (await ledger.accrue(pool, number, points, key=f"a-{number}")).ok


async def test_block_and_unblock_are_audited_idempotent_and_send_gifts_back(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, NUMBER, 100)
    await member(pg_pool, FRIEND, 500)
    assert (await ledger.gift(pg_pool, FRIEND, NUMBER, 200, key="g-1")).ok
    path = f"/v1/subscribers/{NUMBER}/block"
    headers = {"Idempotency-Key": "block-1", "X-Operator": "anna"}
    body = {"reason": "SIM swap reported", "staff_id": "hd-4"}

    first = await client.post(path, json=body, headers=headers)
    assert first.status == 200, await first.text()
    assert await first.json() == {
        "msisdn": NUMBER, "status": "blocked", "changed": True, "gifts_returned": 1,
    }  # fmt: skip
    retry = await client.post(path, json=body, headers=headers)
    assert (retry.status, await retry.json()) == (200, await first.json())
    conflict = await client.post(path, json={"reason": "other"}, headers=headers)
    assert (conflict.status, (await conflict.json())["error"]) == (409, "idempotency_conflict")
    again = await client.post(path, json={"reason": "still"})
    assert (await again.json())["changed"] is False

    friend = await ledger.subscriber_summary(pg_pool, FRIEND)
    assert friend is not None
    assert friend.balance.available == 500  # the gift came back, once
    shown = await (await client.get(f"/v1/subscribers/{NUMBER}")).json()
    assert shown["status"] == "blocked"
    assert shown["block"]["action"] == "block"
    assert shown["block"]["reason"] == "still"
    audit = await ledger.block_history(pg_pool, NUMBER)
    assert [(a.reason, a.actor, a.staff_id, a.changed) for a in audit] == [
        ("still", "api", None, False),
        ("SIM swap reported", "api:anna", "hd-4", True),
    ]

    lifted = await client.post(
        f"/v1/subscribers/{NUMBER}/unblock", json={"reason": "owner identified in shop"}
    )
    assert (lifted.status, (await lifted.json())["status"]) == (200, "active")
    shown = await (await client.get(f"/v1/subscribers/{NUMBER}")).json()
    assert (shown["status"], shown["block"]) == ("active", None)
    assert shown["balance"]["available"] == 100
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "reason: Field required"),
        ({"reason": ""}, "reason: String should have at least 1 character"),
        ({"reason": "   "}, "reason: must not be blank"),
        ({"reason": "x" * 501}, "reason: String should have at most 500 characters"),
        ({"reason": 5}, "reason: Input should be a valid string"),
        ({"reason": "ok", "staff_id": ["a"]}, "staff_id: Input should be a valid string"),
        ({"reason": "ok", "until": "tomorrow"}, "until: Extra inputs are not permitted"),
        ({"reason": "bad\u0000byte"}, "reason:"),
    ],
)
async def test_block_bodies_are_checked(
    client: TestClient, pg_pool: asyncpg.Pool, body: dict[str, Any], says: str
) -> None:
    await member(pg_pool, NUMBER, 10)
    for action in ("block", "unblock"):
        resp = await client.post(f"/v1/subscribers/{NUMBER}/{action}", json=body)
        assert resp.status == 400
        assert says in (await resp.json())["error"]
    assert (await ledger.get_subscriber(pg_pool, NUMBER)).status == "active"  # type: ignore[union-attr]
    assert await ledger.block_history(pg_pool, NUMBER) == []


async def test_block_without_a_body_and_unknown_numbers(client: TestClient) -> None:
    resp = await client.post(f"/v1/subscribers/{NUMBER}/block")
    assert resp.status == 400
    assert "body" in (await resp.json())["error"] or "reason" in (await resp.json())["error"]
    unknown = await client.post(f"/v1/subscribers/{FRIEND}/unblock", json={"reason": "x"})
    assert (unknown.status, (await unknown.json())["error"]) == (404, "no such subscriber")
    bad = await client.post("/v1/subscribers/12/block", json={"reason": "x"})
    assert bad.status == 400
    # A number never seen can be blocked before it ever joins.
    pre = await client.post(f"/v1/subscribers/{FRIEND}/block", json={"reason": "stolen SIM"})
    assert (pre.status, (await pre.json())["changed"]) == (200, True)
    back = await client.post(f"/v1/subscribers/{FRIEND}/unblock", json={"reason": "found"})
    assert (await back.json())["status"] == "not_enrolled"
