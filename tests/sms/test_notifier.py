"""The notification worker against a fake SMS gateway (real HTTP), on a manual clock."""



from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import structlog
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sms_harness import (
    RECIPIENT,
    SENDER,
    THIRD,
    FakeGateway,
    Phone,
    member,
    run_worker_once,
    sms_app,
)

import ledger
from menus import MenuRegistry
from ussd_service.config import Settings
from ussd_service.logs import mask_phone_numbers
from ussd_service.menu_files import load_menus
from ussd_service.notifier import KannelTransport, LogTransport, Notifier

ROOT = Path(__file__).resolve().parents[2]


async def make_events(client: TestClient, pg_pool: asyncpg.Pool) -> None:
    """Gift received (en), accepted and declined (ru), cancelled (en, the sender told too)."""
    await member(pg_pool, SENDER, points=1000)
    await member(pg_pool, THIRD, points=1000)
    await member(pg_pool, RECIPIENT, language="en")
    sender, third, recipient = Phone(client, SENDER), Phone(client, THIRD), Phone(client, RECIPIENT)
    await sender.send("DAR 79167654321 100", "s1")
    await third.send("ДАР 79167654321 40", "s2")
    assert (await recipient.send("GIFT", "r1")).startswith("Accepted 100")
    assert await recipient.send("NO", "r2") == "Gift declined."
    gift = (await ledger.gift(pg_pool, SENDER, RECIPIENT, 30, key="k-cancel")).unwrap()
    assert (await ledger.cancel_gift(pg_pool, SENDER, gift.gift_id, key="k-c2")).ok


async def outbox(pg_pool: asyncpg.Pool, status: str | None = None) -> list[ledger.OutboxMessage]:
    return await ledger.list_outbox(pg_pool, status)  # type: ignore[arg-type]


async def drain(notifier: Notifier, clock: ledger.ManualClock, rounds: int = 10) -> int:
    """Run the worker until nothing is pending, moving the clock past each backoff."""
    for n in range(rounds):
        await notifier.run_once()
        if not await outbox(notifier.pool, "pending"):
            return n + 1
        clock.advance(timedelta(hours=1))
    raise AssertionError("messages still pending")


async def test_every_notification_arrives_once_in_its_language_despite_failures(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    fake, _ = gateway
    fake.fail_first = 3
    await make_events(client, pg_pool)
    messages = await outbox(pg_pool)
    assert [(m.event, m.msisdn) for m in messages] == [
        ("gift_received", RECIPIENT),
        ("gift_received", RECIPIENT),
        ("gift_accepted", SENDER),
        ("gift_declined", THIRD),
        ("gift_received", RECIPIENT),
        ("gift_returned", SENDER),
        ("gift_cancelled", RECIPIENT),
    ]
    assert await drain(notifier, clock) == 2
    assert fake.attempts == len(messages) + 3
    # Exactly once each: one accepted send per outbox message, nothing more later.
    assert len(fake.accepted) == len(messages)
    await notifier.run_once()
    assert len(fake.accepted) == len(messages)
    assert all(m.status == "sent" for m in await outbox(pg_pool))

    to_recipient = fake.texts_to(RECIPIENT)
    assert len(to_recipient) == 4
    assert any(" sent you 40 points. Reply GIFT by " in text for text in to_recipient)
    cancelled = "The gift of 30 points from +7 916 123-45-67 was cancelled by the sender."
    assert cancelled in to_recipient
    # Retries reorder deliveries.
    assert sorted(fake.texts_to(SENDER)) == [
        "Ваш подарок 100 баллов принят.",
        "Подарок 30 баллов на +7 916 765-43-21 отменён, баллы вернулись.",
    ]
    assert fake.texts_to(THIRD) == ["Ваш подарок 40 баллов отклонён."]
    for params in fake.accepted:
        assert params["from"] == "4555"
        assert (params["username"], params["password"], params["charset"]) == (
            "svc",
            "pw-1234",
            "UTF-8",
        )
        # Cyrillic goes as UCS-2; English texts fit GSM-7.
        assert params.get("coding") == ("2" if params["to"] != RECIPIENT else None)
    # The default method: Kannel's POST convention (text body, X-Kannel-* headers).
    assert {method for method, _ in fake.requests} == {"POST"}


async def test_outbox_endpoint_shows_how_messages_went_out(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    clock: ledger.ManualClock,
) -> None:
    await make_events(client, pg_pool)
    await drain(notifier, clock)
    body = await (await client.get("/v1/outbox", params={"status": "sent"})).json()
    assert len(body["items"]) == 7
    first = body["items"][0]
    assert first["event"] == "gift_received"
    assert first["msisdn"] == RECIPIENT
    assert first["status"] == "sent"
    assert first["delivery"]["via"] == "gateway"
    assert " sent you 100 points." in first["delivery"]["text"]
    assert (await client.get("/v1/outbox", params={"status": "failed"})).status == 200
    for bad in ({"status": "lost"}, {"limit": "0"}, {"limit": "x"}, {"limit": "501"}):
        assert (await client.get("/v1/outbox", params=bad)).status == 400


async def test_gateway_down_keeps_messages_pending_then_they_go_out(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    fake, _ = gateway
    fake.down = True
    await make_events(client, pg_pool)
    for _ in range(3):
        report = await notifier.run_once()
        assert len(report.retrying) == 7
        clock.advance(timedelta(hours=1))
    pending = await outbox(pg_pool, "pending")
    assert len(pending) == 7
    assert {m.attempts for m in pending} == {3}
    assert {m.last_error for m in pending} == {"gateway answered 503: Service unavailable"}
    body = await (await client.get("/v1/outbox", params={"status": "pending"})).json()
    assert [item["delivery"] for item in body["items"]] == [None] * 7
    assert fake.accepted == []

    fake.down = False
    report = await notifier.run_once()
    assert len(report.sent) == 7
    assert len(fake.accepted) == 7
    assert len({(p["to"], p["text"]) for p in fake.accepted}) == 7
    assert await outbox(pg_pool, "pending") == []


async def test_messages_that_keep_failing_are_parked_with_the_reason(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    registry: MenuRegistry,
    http_session: aiohttp.ClientSession,
    clock: ledger.ManualClock,
    unused_tcp_port: int,
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "p1")
    # Nothing listens there: every try fails to connect.
    transport = KannelTransport(
        http_session, f"http://127.0.0.1:{unused_tcp_port}/cgi-bin/sendsms", sender="4555"
    )
    rules = ledger.LedgerSettings(outbox_max_attempts=3)
    notifier = Notifier(
        pg_pool, registry, transport, redis=redis_client, clock=clock, settings=rules
    )
    reports = []
    for _ in range(3):
        reports.append(await notifier.run_once())
        clock.advance(timedelta(hours=1))
    assert [(len(r.retrying), len(r.parked)) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    assert await notifier.run_once() == type(reports[0])()  # parked: never claimed again
    body = await (await client.get("/v1/outbox", params={"status": "failed"})).json()
    [item] = body["items"]
    assert item["event"] == "gift_received"
    assert item["attempts"] == 3
    assert item["last_error"].startswith("gateway unreachable: Client")


async def test_without_a_gateway_notifications_are_logged_and_marked_sent(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    registry: MenuRegistry,
    clock: ledger.ManualClock,
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "l1")
    notifier = Notifier(pg_pool, registry, LogTransport(), redis=redis_client, clock=clock)
    with structlog.testing.capture_logs() as logs:
        report = await notifier.run_once()
    assert len(report.sent) == 1
    [entry] = [e for e in logs if e["event"] == "sms_logged"]
    assert entry["text"].startswith("Вам 100 баллов от +7 916 ")
    # The service's logging pipeline masks the addressee's number, and the sender's.
    masked = mask_phone_numbers(None, "info", dict(entry))
    assert RECIPIENT not in str(masked)
    assert SENDER not in str(masked)
    assert "+7916*****21" in str(masked)
    body = await (await client.get("/v1/outbox", params={"status": "sent"})).json()
    [item] = body["items"]
    assert item["delivery"]["via"] == "log"
    assert item["delivery"]["text"] == entry["text"]


async def test_a_notification_without_a_template_is_parked_at_once(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    clock: ledger.ManualClock,
    tmp_path: Path,
) -> None:
    text = (ROOT / "menu_definitions.yaml").read_text(encoding="utf-8")
    start = text.index("    gift_received:\n      ru:")
    end = text.index("    gift_accepted:")
    menu_file = tmp_path / "menu.yaml"
    menu_file.write_text(text[:start] + text[end:], encoding="utf-8")
    registry = load_menus(menu_file)
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "t1")
    notifier = Notifier(pg_pool, registry, LogTransport(), redis=redis_client, clock=clock)
    report = await notifier.run_once()
    assert len(report.parked) == 1
    [failed] = await outbox(pg_pool, "failed")
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert failed.last_error.startswith("cannot render gift_received")


async def test_worker_delivers_inside_the_service(
    settings: Settings,
    redis_client: aioredis.Redis,
    pg_pool: asyncpg.Pool,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    live = settings.model_copy(
        update={
            "sms_gateway_url": url,
            "notifier_interval": 0.05,
            "sms_gateway_method": "GET",
            "sms_gateway_username": "svc",
            "sms_gateway_password": SecretStr("pw-1234"),
        }
    )
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT, language="en")
    async with TestClient(TestServer(sms_app(live, worker=True))) as client:
        await Phone(client, SENDER).send("DAR 79167654321 100", "w1")
        await asyncio.wait_for(fake.delivered.wait(), 10)
    [message] = await outbox(pg_pool)
    assert message.status == "sent"
    assert " sent you 100 points." in fake.texts_to(RECIPIENT)[0]
    assert [method for method, _ in fake.requests] == ["GET"]


async def test_worker_command_delivers_what_is_due(
    settings: Settings, client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await member(pg_pool, SENDER, points=500)
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("DAR 79167654321 100", "c1")
    out, err = await run_worker_once(settings, USSD_LOG_FORMAT="json")
    assert "claimed 1, sent 1, retrying 0, parked 0" in out
    assert RECIPIENT not in out + err  # logged, masked
    assert [m.status for m in await outbox(pg_pool)] == ["sent"]


async def test_expired_gift_notifies_both_sides_with_local_dates(
    client: TestClient,
    pg_pool: asyncpg.Pool,
    notifier: Notifier,
    gateway: tuple[FakeGateway, str],
    clock: ledger.ManualClock,
) -> None:
    fake, _ = gateway
    await member(pg_pool, SENDER, points=500, language="en")
    await member(pg_pool, RECIPIENT)
    await Phone(client, SENDER).send("GIFT 79167654321 100", "x1")
    await drain(notifier, clock)
    [received] = fake.texts_to(RECIPIENT)
    [message] = await outbox(pg_pool)
    expires = datetime.fromisoformat(message.payload["expires_at"])
    local_day = expires.astimezone(ZoneInfo("Europe/Moscow")).day
    # The expiry day as subscribers live it (Moscow), not the UTC one.
    assert f"Ответьте ДАР до {local_day} " in received
    assert await ledger.expire_gifts(pg_pool, now=expires + timedelta(seconds=1)) == 1
    clock.set(expires + timedelta(minutes=1))
    await drain(notifier, clock)
    assert fake.texts_to(RECIPIENT)[1] == "Подарок 100 баллов не принят вовремя."
    assert fake.texts_to(SENDER) == ["100 points from your gift are back on your balance."]
    assert await ledger.check(pg_pool) == []
