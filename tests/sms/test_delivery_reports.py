"""Delivery reports (/sms/dlr) over real HTTP: the ones a fake SMSC never sends.

Kannel's fake SMSC only ever reports "delivered" (``tests/kannel`` covers
that); failures, refusals, late and repeated reports are sent here as Kannel
would call the ``dlr-url`` (``kannel_dlr``).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sms_harness import RECIPIENT, SENDER, FakeGateway, Phone, member, sms_app

import ledger
from ledger.outbox import record_delivery_report
from menus import MenuRegistry
from ussd_service.channels.dialect import GatewayRequest
from ussd_service.channels.sms import DLR_MASK, dlr_url, kannel_dlr
from ussd_service.config import Settings
from ussd_service.notifier import (
    KannelTransport,
    Notifier,
    Outgoing,
    delivery_report_base,
)

BASE = "https://sms.example.net/ussd"
SECRET = "dlr-secret-0123456789"


async def call(client: TestClient, request: GatewayRequest) -> tuple[int, str]:
    resp = await client.request(request.method, request.path, params=dict(request.query))
    return resp.status, await resp.text()


async def sent_notification(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
) -> ledger.OutboxMessage:
    """A gift whose notification went out once (attempt 1)."""
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "d1")
    report = await notifier.run_once()
    [message] = await ledger.list_outbox(pg_pool)
    assert report.sent == [message.id]
    return message


@pytest.fixture
def dlr_notifier(
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    registry: MenuRegistry,
    gateway: tuple[FakeGateway, str],
    http_session: aiohttp.ClientSession,
    clock: ledger.ManualClock,
) -> Notifier:
    """A worker asking the fake gateway for delivery reports at BASE."""
    transport = KannelTransport(
        http_session,
        gateway[1],
        sender="4555",
        username="svc",
        password="pw-1234",
        dlr_base=BASE,
        dlr_secret=SECRET,
    )
    return Notifier(pg_pool, registry, transport, redis=redis_client, clock=clock)


async def only(pg_pool: asyncpg.Pool) -> ledger.OutboxMessage:
    [message] = await ledger.list_outbox(pg_pool)
    return message


# -- what the notifier asks Kannel for ----------------------------------------------------------


def test_the_dlr_url_names_the_message_and_attempt_and_carries_the_secret() -> None:
    url = dlr_url(BASE, SECRET, 42, 3)
    assert url == (
        f"https://kannel:{SECRET}@sms.example.net/ussd/sms/dlr"
        "?outbox=42&attempt=3&type=%d&at=%T&answer=%A"
    )
    assert dlr_url("http://127.0.0.1:8080/", None, 1, 1).startswith(
        "http://127.0.0.1:8080/sms/dlr?outbox=1&attempt=1&"
    )
    with pytest.raises(ValueError, match="cannot ride in a URL"):
        dlr_url(BASE, "with:colon@and/slash", 1, 1)


@pytest.mark.parametrize(
    ("public_url", "secret", "expected"),
    [
        (None, SECRET, None),
        (BASE, SECRET, BASE),
        (BASE, None, BASE),
        (BASE, "sixteen+chars:not/url@safe", None),
    ],
)
def test_delivery_reports_need_the_public_url_and_a_url_safe_secret(
    settings: Settings, public_url: str | None, secret: str | None, expected: str | None
) -> None:
    configured = settings.model_copy(update={"public_url": public_url, "gateway_secret": secret})
    assert delivery_report_base(configured) == expected


async def test_sends_ask_for_every_report_in_both_conventions(
    http_session: aiohttp.ClientSession,
) -> None:
    message = Outgoing(outbox_id=7, attempt=2, to=RECIPIENT, text="Вам 5 б.")  # noqa: RUF001
    for method in ("GET", "POST"):
        transport = KannelTransport(
            http_session,
            "http://127.0.0.1:13013/cgi-bin/sendsms",
            sender="4555",
            username="svc",
            password="pw",
            method=method,
            dlr_base=BASE,
            dlr_secret=SECRET,
        )
        call_ = transport.request(message)
        if method == "GET":
            assert call_.body is None
            fields = call_.params
        else:
            assert call_.params == {}
            assert call_.headers["Content-Type"] == "text/plain; charset=UTF-8"
            assert call_.body == message.text.encode()
            fields = {
                name[len("X-Kannel-") :].lower(): value
                for name, value in call_.headers.items()
                if name.startswith("X-Kannel-")
            }
            fields["text"] = message.text
            fields["charset"] = "UTF-8"
        assert fields["dlr-mask"] == str(DLR_MASK) == "31"
        assert fields["dlr-url"] == dlr_url(BASE, SECRET, 7, 2)
        assert (fields["coding"], fields["charset"]) == ("2", "UTF-8")
        assert (fields["from"], fields["to"], fields["text"]) == ("4555", RECIPIENT, message.text)
        assert (fields["username"], fields["password"]) == ("svc", "pw")


async def test_the_fake_gateway_receives_the_dlr_url_of_each_attempt(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    dlr_notifier: Notifier,
    gateway: tuple[FakeGateway, str],
) -> None:
    message = await sent_notification(client, pg_pool, dlr_notifier)
    fake, _ = gateway
    [params] = fake.accepted
    assert params["dlr-mask"] == "31"
    query = parse_qs(urlsplit(params["dlr-url"]).query)
    assert (query["outbox"], query["attempt"], query["type"]) == ([str(message.id)], ["1"], ["%d"])


# -- what the reports do -----------------------------------------------------------------------


async def test_delivered_after_progress_and_nothing_after_the_final_report(
    client: TestClient, pg_pool: asyncpg.Pool, dlr_notifier: Notifier
) -> None:
    message = await sent_notification(client, pg_pool, dlr_notifier)
    assert await call(client, kannel_dlr(message.id, 1, 8, answer="ACK/", at=1_800_000_000)) == (
        200,
        "ok\n",
    )
    accepted = await only(pg_pool)
    assert accepted.dlr is not None
    assert (accepted.dlr.status, accepted.dlr.detail) == ("accepted", "ACK/")
    assert accepted.dlr.at.timestamp() == 1_800_000_000
    assert (await call(client, kannel_dlr(message.id, 1, 1)))[0] == 200
    assert (await call(client, kannel_dlr(message.id, 1, 2)))[0] == 200  # too late: decided
    assert (await call(client, kannel_dlr(message.id, 1, 4)))[0] == 200
    done = await only(pg_pool)
    assert done.status == "sent"
    assert done.dlr is not None
    assert (done.dlr.status, done.dlr.attempt) == ("delivered", 1)
    metrics = await (await client.get("/metrics")).text()
    counts = dict(
        re.findall(r'^ussd_sms_delivery_reports_total\{result="(\w+)"\} (\S+)$', metrics, re.M)
    )
    assert counts["progress"] == "1.0"
    assert counts["delivered"] == "1.0"
    assert counts["duplicate"] == "2.0"
    # The operators see it in the outbox.
    body = await (await client.get("/v1/outbox", params={"status": "sent"})).json()
    [item] = [i for i in body["items"] if i["id"] == message.id]
    assert item["dlr"]["status"] == "delivered"
    assert item["dlr"]["attempt"] == 1


async def test_a_refusal_by_the_smsc_is_retried_and_a_late_report_is_stale(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    dlr_notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    message = await sent_notification(client, pg_pool, dlr_notifier)
    nack = "NACK/0x00000058/Throughput exceeded"
    assert (await call(client, kannel_dlr(message.id, 1, 16, answer=nack)))[0] == 200
    retrying = await only(pg_pool)
    assert retrying.status == "pending"
    assert retrying.last_error == f"delivery report: not delivered ({nack})"
    assert retrying.next_attempt_at > datetime.now(UTC)
    clock.set(retrying.next_attempt_at - timedelta(seconds=1))
    assert (await dlr_notifier.run_once()).claimed == 0  # backing off
    clock.set(retrying.next_attempt_at)
    assert (await dlr_notifier.run_once()).sent == [message.id]
    fake, _ = gateway
    assert "attempt=2&" in fake.accepted[-1]["dlr-url"]
    # The first attempt's delivery report comes late: it changes nothing.
    assert (await call(client, kannel_dlr(message.id, 1, 1)))[0] == 200
    again = await only(pg_pool)
    assert (again.status, again.attempts) == ("sent", 2)
    assert again.dlr is not None
    assert (again.dlr.status, again.dlr.attempt) == ("failed", 1)
    assert (await call(client, kannel_dlr(message.id, 2, 1)))[0] == 200
    delivered = await only(pg_pool)
    assert delivered.dlr is not None
    assert (delivered.dlr.status, delivered.dlr.attempt) == ("delivered", 2)


@pytest.mark.parametrize(
    ("kind", "answer"),
    [(2, "id:1 stat:UNDELIV err:001"), (16, "NACK/0x0000000b/Invalid Destination Address")],
)
async def test_a_permanent_failure_parks_the_message(
    client: TestClient, pg_pool: asyncpg.Pool, dlr_notifier: Notifier, kind: int, answer: str
) -> None:
    message = await sent_notification(client, pg_pool, dlr_notifier)
    assert (await call(client, kannel_dlr(message.id, 1, kind, answer=answer)))[0] == 200
    parked = await only(pg_pool)
    assert parked.status == "failed"
    assert parked.last_error == f"delivery report: not delivered ({answer})"
    assert (await dlr_notifier.run_once()).claimed == 0


async def test_refusals_past_the_last_attempt_park_the_message(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    dlr_notifier: Notifier,
) -> None:
    message = await sent_notification(client, pg_pool, dlr_notifier)
    rules = ledger.LedgerSettings(outbox_max_attempts=1)
    result = await record_delivery_report(pg_pool, message.id, 1, "failed", settings=rules)
    assert result == "parked"
    assert (await only(pg_pool)).status == "failed"


async def test_a_failed_report_that_overtakes_the_worker_keeps_the_message_due(
    client: TestClient, pg_pool: asyncpg.Pool, clock: ledger.ManualClock
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "o1")
    [claimed] = await ledger.claim_due(pg_pool, clock=clock)
    # Kannel took it, the SMSC refused it, and the report came before mark_sent.
    assert await record_delivery_report(pg_pool, claimed.id, 1, "failed") == "retrying"
    assert await ledger.mark_sent(pg_pool, claimed.id, clock=clock) is False
    assert (await only(pg_pool)).status == "pending"
    # A delivered report that overtakes it marks it sent.
    clock.advance(timedelta(hours=1))
    [again] = await ledger.claim_due(pg_pool, clock=clock)
    assert await record_delivery_report(pg_pool, again.id, 2, "delivered") == "delivered"
    sent = await only(pg_pool)
    assert sent.status == "sent"
    assert sent.sent_at is not None


async def test_reports_on_unknown_messages_are_answered_and_counted(client: TestClient) -> None:
    assert await call(client, kannel_dlr(999_999, 1, 1)) == (200, "ok\n")
    resp = await client.post(
        "/sms/dlr", data={"outbox": "999999", "attempt": "1", "type": "1"}
    )  # a form POST works too
    assert resp.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'ussd_sms_delivery_reports_total{result="unknown"} 2.0' in metrics


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("attempt=1&type=1", "missing field outbox"),
        ("outbox=x&attempt=1&type=1", "field outbox must be a positive whole number"),
        ("outbox=1&attempt=0&type=1", "field attempt must be a positive whole number"),
        ("outbox=1&attempt=1&type=3", "field type must be one of 1, 2, 4, 8, 16"),
        ("outbox=1&attempt=1&type=1&at=yesterday", "field at must be a Unix time"),
        ("outbox=1&attempt=1&type=1&at=999999999999999", "field at must be a Unix time"),
        ("outbox=999999999999999999&attempt=1&type=1", None),
        ("outbox=1&attempt=1", "missing field type"),
    ],
)
async def test_malformed_reports_get_a_400_with_a_reason(
    client: TestClient, query: str, reason: str | None
) -> None:
    resp = await client.get("/sms/dlr?" + query)
    if reason is None:  # well-formed, just unknown
        assert resp.status == 200
        return
    assert resp.status == 400
    assert reason in await resp.text()


async def test_reports_need_the_gateway_secret_as_kannel_presents_it(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    guarded = settings.model_copy(update={"gateway_secret": SECRET})
    basic = "Basic " + base64.b64encode(f"kannel:{SECRET}".encode()).decode()
    request = kannel_dlr(1, 1, 1)
    async with TestClient(TestServer(sms_app(guarded))) as client:
        assert (await client.get(request.path, params=dict(request.query))).status == 401
        resp = await client.get(
            request.path, params=dict(request.query), headers={"Authorization": basic}
        )
        assert resp.status == 200


async def test_a_report_the_ledger_cannot_take_gets_a_503_for_kannel_to_retry(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    nowhere = f"postgresql://postgres@/nowhere?host={tmp_path}"
    broken = settings.model_copy(update={"database_url": nowhere})
    async with TestClient(TestServer(sms_app(broken))) as client:
        status, body = await call(client, kannel_dlr(1, 1, 1))
        assert (status, body) == (503, "the ledger is unreachable\n")
        metrics = await (await client.get("/metrics")).text()
        assert 'ussd_sms_delivery_reports_total{result="unavailable"} 1.0' in metrics
