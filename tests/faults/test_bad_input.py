"""Each input the fuzzer found to cause a 5xx: now a 4xx that says why, and nothing lost.

Also: backend outages on ``/v1/*`` are a 503 with ``Retry-After``, never a 500
or a hung request. Outages here are cheap stand-ins for a stopped and a frozen
PostgreSQL (a port nobody listens on; a listener that never answers);
``test_fuzz.py`` runs against a real stopped server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp.test_utils import TestClient, TestServer

import ledger
from ledger.points import add_months
from ussd_service import api
from ussd_service.app import create_app
from ussd_service.config import Settings

SENDER = "+79161234567"
RECIPIENT = "+79161234568"
ZONE = ZoneInfo(ledger.DEFAULT_SETTINGS.timezone)
TOKEN = "api-token-0123456789abcdef"
SECRET = "gateway-secret-0123456789"


def accrual(**fields: Any) -> dict[str, Any]:
    return {"msisdn": SENDER, "points": 500, "reason": "bill", "idempotency_key": "k1", **fields}


def one_line_error(body: dict[str, Any]) -> str:
    message = body["error"]
    assert isinstance(message, str)
    assert message
    assert "\n" not in message
    return message


async def raw_request(
    client: TestClient, head: bytes, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes the HTTP client would refuse to send; (status, headers, body)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, content


# -- dates: year 9999 poisoned every read of the subscriber --------------------


async def test_accrual_expiring_in_year_9999_is_refused_and_reads_keep_working(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    for expires_at in ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59+03:00", "9999-12-31"):
        resp = await client.post("/v1/accruals", json=accrual(expires_at=expires_at))
        assert resp.status == 400, (expires_at, await resp.text())
        message = one_line_error(await resp.json())
        assert "expires_at" in message
        assert "months" in message, message
    resp = await client.get(f"/v1/subscribers/{SENDER}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["balance"]["available"] == 0
    # No caller of the ledger can store one either.
    with pytest.raises(ValueError, match="expires_at"):
        await ledger.accrue(
            pg_pool, SENDER, 5, key="direct", expires_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
        )
    assert await ledger.check(pg_pool) == []


@pytest.mark.parametrize(
    ("expires_at", "why"),
    [
        ("2001-01-01T00:00:00Z", "future"),
        ("2001-01-01", "future"),
        ("0001-01-01T00:00:00+05:00", "future"),
        ("9999-12-31T23:59:59-05:00", "months"),
        ("2027-02-30", "expires_at"),
        ("2027-03-31T10:00:00", "expires_at"),  # no time zone: which 10:00?
        ("tomorrow", "expires_at"),
        (20270331, "expires_at"),
    ],
)
async def test_bad_expiry_dates_get_a_400_that_says_why(
    client: TestClient, pg_pool: asyncpg.Pool, expires_at: object, why: str
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    resp = await client.post("/v1/accruals", json=accrual(expires_at=expires_at))
    assert resp.status == 400, await resp.text()
    assert why in one_line_error(await resp.json())


async def test_a_plain_date_is_the_end_of_that_day_in_the_programme_time_zone(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    day = datetime.now(ZONE).date() + timedelta(days=100)
    resp = await client.post("/v1/accruals", json=accrual(expires_at=day.isoformat()))
    assert resp.status == 201, await resp.text()
    stored = datetime.fromisoformat((await resp.json())["expires_at"])
    assert stored == datetime.combine(day, time.max, tzinfo=ZONE)
    summary = await (await client.get(f"/v1/subscribers/{SENDER}")).json()
    assert summary["expiring"] == {"points": 500, "date": day.isoformat()}


async def test_the_horizon_is_a_ledger_setting_checked_by_accrue(pg_pool: asyncpg.Pool) -> None:
    settings = ledger.DEFAULT_SETTINGS
    await ledger.enroll(pg_pool, SENDER, key="e")
    now = datetime.now(UTC)
    edge = add_months(now, settings.points_max_validity_months) - timedelta(minutes=1)
    assert (await ledger.accrue(pg_pool, SENDER, 5, key="a1", expires_at=edge)).ok
    with pytest.raises(ValueError, match="expires_at"):
        await ledger.accrue(pg_pool, SENDER, 5, key="a2", expires_at=edge + timedelta(days=2))
    with pytest.raises(ValueError, match="expires_at"):
        await ledger.accrue(pg_pool, SENDER, 5, key="a3", expires_at=now - timedelta(seconds=1))
    # A plain date is accepted by the ledger itself: the end of that day, locally.
    day = datetime.now(ZONE).date() + timedelta(days=10)
    accrued = (await ledger.accrue(pg_pool, SENDER, 5, key="a4", expires_at=day)).unwrap()
    assert accrued.expires_at == datetime.combine(day, time.max, tzinfo=ZONE)
    with pytest.raises(ValueError, match="expires_at"):
        await ledger.accrue(pg_pool, SENDER, 5, key="a5", expires_at=date(9999, 12, 31))
    # The default validity is inside the horizon, or no plain accrual would pass.
    assert settings.points_validity_months <= settings.points_max_validity_months


async def test_points_at_the_horizon_passed_on_as_a_gift_poison_no_one(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    """A gift keeps the sender's expiry dates; the farthest allowed one stays readable."""
    for number in (SENDER, RECIPIENT):
        await ledger.enroll(pg_pool, number, key=f"e{number}")
    horizon = add_months(datetime.now(ZONE), ledger.DEFAULT_SETTINGS.points_max_validity_months)
    last_day = horizon.date() - timedelta(days=1)
    resp = await client.post("/v1/accruals", json=accrual(expires_at=last_day.isoformat()))
    assert resp.status == 201, await resp.text()
    sent = (await ledger.gift(pg_pool, SENDER, RECIPIENT, 100, key="g")).unwrap()
    assert (await ledger.accept_gift(pg_pool, RECIPIENT, key="acc")).ok
    assert sent.points == 100
    for number, points in ((SENDER, 400), (RECIPIENT, 100)):
        resp = await client.get(f"/v1/subscribers/{number}")
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        assert data["expiring"] == {"points": points, "date": last_day.isoformat()}
        assert (await client.get(f"/v1/subscribers/{number}/history")).status == 200
        sms = await client.post(
            "/sms/inbound", data={"from": number, "to": "4555", "text": "BALANCE"}
        )
        assert sms.status == 200, await sms.text()
        assert str(points) in await sms.text()
        ussd = await client.post(
            "/ussd",
            json={"session_id": f"s{number}", "msisdn": number, "event": "begin"},
        )
        assert ussd.status == 200, await ussd.text()
        menu = await client.post(
            "/ussd",
            json={"session_id": f"s{number}", "msisdn": number, "event": "input", "input": "1"},
        )
        assert menu.status == 200, await menu.text()
        assert str(points) in (await menu.json())["text"]
    assert await ledger.check(pg_pool) == []


# -- JSON nesting -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ussd", "/v1/accruals"])
@pytest.mark.parametrize("body", ["[" * 4000, '{"a":' * 800, '{"session_id": ' + "[" * 4000])
async def test_deeply_nested_json_is_a_400(client: TestClient, path: str, body: str) -> None:
    resp = await client.post(path, data=body.encode(), headers={"Content-Type": "application/json"})
    text = await resp.text()
    assert resp.status == 400, text
    assert text.count("\n") <= 1
    assert "nested" in text


# -- text the database cannot store ---------------------------------------------


@pytest.mark.parametrize("field", ["idempotency_key", "reason"])
@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\x07", "line\nbreak", "\ud800"])
async def test_control_characters_in_text_fields_are_a_400(
    client: TestClient, pg_pool: asyncpg.Pool, field: str, bad: str
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    resp = await client.post("/v1/accruals", json=accrual(**{field: bad}))
    assert resp.status == 400, await resp.text()
    message = one_line_error(await resp.json())
    # A lone surrogate escape is refused by the JSON parser itself.
    assert field in message or (bad == "\ud800" and "JSON" in message), message
    assert (await client.get(f"/v1/subscribers/{SENDER}")).status == 200
    # Nothing lost: the same accrual with clean text goes through.
    resp = await client.post("/v1/accruals", json=accrual())
    assert resp.status == 201, await resp.text()


async def test_control_characters_in_other_text_are_a_400(
    client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    resp = await client.post("/v1/redemptions/1/failed", json={"reason": "out\x00of stock"})
    assert resp.status == 400, await resp.text()
    assert "reason" in one_line_error(await resp.json())
    for name, path in (
        ("Idempotency-Key", f"/v1/subscribers/{SENDER}/enrollment"),
        ("X-Operator", "/v1/handoffs/1/claim"),
    ):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{name}: ".encode() + b"\xff\xfe"
        status, _, body = await raw_request(client, head)
        assert status == 400, (name, body)
        assert name in one_line_error(json.loads(body))
    assert await ledger.get_subscriber(pg_pool, SENDER) is None


# -- malformed path parameters, queries, bodies --------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/subscribers/%00", 400),
        ("GET", "/v1/subscribers/" + "9" * 5000, 400),
        ("GET", "/v1/subscribers/%ff%fe", 400),
        ("GET", "/v1/subscribers/\u00b2\u00b2/history", 400),
        ("GET", f"/v1/subscribers/{SENDER}/history?limit=%C2%B2", 400),
        ("GET", f"/v1/subscribers/{SENDER}/history?limit=99999999999999999999999", 400),
        ("GET", "/v1/outbox?limit=%C2%B2", 400),
        ("GET", "/v1/outbox?limit=%00", 400),
        ("GET", "/v1/handoffs?status=%00", 400),
        ("POST", "/v1/redemptions/%C2%B2/fulfilled", 404),
        ("POST", "/v1/redemptions/" + "9" * 5000 + "/fulfilled", 404),
        ("POST", "/v1/redemptions/-1/failed", 404),
        ("POST", "/v1/handoffs/%C2%B2/claim", 404),
        ("POST", "/v1/handoffs/99999999999999999999/close", 404),
    ],
)
async def test_malformed_path_and_query_parameters_are_a_4xx(
    client: TestClient, method: str, path: str, status: int
) -> None:
    resp = await client.request(method, path)
    assert resp.status == status, await resp.text()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"null", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (json.dumps(accrual(points="many")).encode(), "application/json", 400),
        (json.dumps(accrual(points=1.5)).encode(), "application/json", 400),
        (json.dumps(accrual(points=2**80)).encode(), "application/json", 400),
        (json.dumps(accrual(msisdn=79161234567)).encode(), "application/json", 400),
        (json.dumps(accrual(reason=["x"])).encode(), "application/json", 400),
        (json.dumps(accrual(expires_at={"y": 9999})).encode(), "application/json", 400),
        (b"\xff\xfe{}", "application/json", 400),
        # The body must be JSON, whatever the declared type (curl -d sends a form type).
        (b"msisdn=%2B79161234567&points=5", "application/x-www-form-urlencoded", 400),
        (b"--xyz\r\n\r\n--xyz--", "multipart/form-data; boundary=xyz", 400),
        (b"{" + b" " * 20_000 + b"}", "application/json", 413),
    ],
)
async def test_bad_accrual_bodies_are_a_4xx(
    client: TestClient, pg_pool: asyncpg.Pool, body: bytes, content_type: str, status: int
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    resp = await client.post("/v1/accruals", data=body, headers={"Content-Type": content_type})
    assert resp.status == status, await resp.text()
    if resp.content_type == "application/json":
        one_line_error(await resp.json())


# -- credentials with bytes that are not text ----------------------------------


@pytest.fixture
async def guarded(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[TestClient]:
    """The app with an API token, a gateway secret and a Twilio token configured."""
    configured = settings.model_copy(
        update={"api_token": TOKEN, "gateway_secret": SECRET, "twilio_auth_token": SECRET}
    )
    async with TestClient(TestServer(create_app(configured, background=False))) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/v1/handoffs", b"Authorization: Bearer \xff\xfe\xc3("),
        ("/v1/handoffs", b"Authorization: Bearer t\xc3\xa9st"),
        ("/ussd", b"X-Gateway-Token: \xff\xfe\xc3("),
        ("/ussd", b"X-Gateway-Token: s\xc3\xa9cret"),
        ("/ussd", b"Authorization: Basic " + base64.b64encode(b"user:\xff\xfe")),
        ("/ussd", b"Authorization: Basic \xc3\xa9t\xc3\xa9"),
        ("/ussd", b"Authorization: Basic \xff"),
        ("/ivr/twilio", b"X-Gateway-Token: \x80"),
    ],
)
async def test_credentials_that_are_not_ascii_are_a_401(
    guarded: TestClient, path: str, header: bytes
) -> None:
    method = b"GET" if path.startswith("/v1") else b"POST"
    head = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + header
    status, _, body = await raw_request(guarded, head, b"{}")
    assert status == 401, body
    assert body.count(b"\n") <= 1


async def test_a_twilio_signature_that_is_not_ascii_is_a_403(guarded: TestClient) -> None:
    head = (
        b"POST /ivr/twilio HTTP/1.1\r\nHost: x\r\nX-Gateway-Token: "
        + SECRET.encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: \xff\xfe"
    )
    status, _, body = await raw_request(guarded, head, b"CallSid=CA1&From=%2B79161234567")
    assert status == 403, body


# -- outages: 503 with Retry-After, a one-line warning, no hung request ---------


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: connections are refused (a stopped server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (a frozen server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


V1_REQUESTS = [
    ("POST", "/v1/accruals", accrual()),
    ("GET", f"/v1/subscribers/{SENDER}", None),
    ("POST", f"/v1/subscribers/{SENDER}/enrollment", None),
    ("GET", f"/v1/subscribers/{SENDER}/history", None),
    ("POST", "/v1/redemptions/1/fulfilled", None),
    ("POST", "/v1/redemptions/1/failed", {"reason": "gone"}),
    ("GET", "/v1/handoffs?status=waiting", None),
    ("POST", "/v1/handoffs/1/claim", None),
    ("POST", "/v1/handoffs/1/close", None),
    ("GET", "/v1/outbox", None),
]


async def _assert_unavailable(client: TestClient, *, within_s: float) -> None:
    for method, path, body in V1_REQUESTS:
        started = asyncio.get_running_loop().time()
        resp = await client.request(method, path, json=body)
        elapsed = asyncio.get_running_loop().time() - started
        assert resp.status == 503, (path, resp.status, await resp.text())
        assert resp.headers["Retry-After"].isdigit()
        one_line_error(await resp.json())
        assert elapsed < within_s, (path, elapsed)


async def test_v1_with_postgres_refusing_connections_is_a_503_logged_in_one_line(
    settings: Settings, redis_client: aioredis.Redis, closed_port: int
) -> None:
    down = settings.model_copy(
        update={"database_url": f"postgresql://u@127.0.0.1:{closed_port}/nowhere"}
    )
    async with TestClient(TestServer(create_app(down, background=False))) as client:
        with structlog.testing.capture_logs() as logs:
            await _assert_unavailable(client, within_s=api.DEADLINE_S + 1.5)
        assert (await client.get("/healthz")).status == 200
    # One warning per request, no traceback, nothing logged as an error.
    assert [e["log_level"] for e in logs] == ["warning"] * len(V1_REQUESTS), logs
    for event in logs:
        assert event["event"] == "backend_unavailable"
        assert "exc_info" not in event
        assert "\n" not in str(event.get("detail"))


async def test_v1_with_postgres_frozen_is_a_503_at_the_deadline(
    settings: Settings,
    redis_client: aioredis.Redis,
    black_hole: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "DEADLINE_S", 0.5)
    frozen = settings.model_copy(
        update={"database_url": f"postgresql://u@127.0.0.1:{black_hole}/frozen"}
    )
    async with TestClient(TestServer(create_app(frozen, background=False))) as client:
        await _assert_unavailable(client, within_s=0.5 + 1.5)
        assert (await client.get("/healthz")).status == 200


async def test_outbox_with_redis_down_still_lists_and_ledger_calls_do_not_need_it(
    settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, closed_port: int
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    async with TestClient(TestServer(create_app(no_redis, background=False))) as client:
        assert (await client.get("/v1/outbox")).status == 200
        assert (await client.get(f"/v1/subscribers/{SENDER}")).status == 200
        resp = await client.post("/v1/accruals", json=accrual())
        assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("offset", ["Z", "+03:00", "-11:30"])
async def test_a_date_time_with_an_offset_is_that_moment(
    client: TestClient, pg_pool: asyncpg.Pool, offset: str
) -> None:
    await ledger.enroll(pg_pool, SENDER, key="e")
    moment = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0, tzinfo=None)
    resp = await client.post("/v1/accruals", json=accrual(expires_at=moment.isoformat() + offset))
    assert resp.status == 201, await resp.text()
    stored = datetime.fromisoformat((await resp.json())["expires_at"])
    assert stored == datetime.fromisoformat(moment.isoformat() + offset)
