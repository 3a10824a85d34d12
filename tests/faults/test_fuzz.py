"""Every endpoint of the app, fuzzed: never a 5xx, and the app stays healthy after.

The endpoints are the app's own router and its ``/openapi.json``; bodies,
queries and path parameters come from the OpenAPI schemas (right and wrong
types, bounds, formats) and from arbitrary bytes, JSON, forms and headers,
with the inputs that once caused a 5xx mixed in. Each example sends one
request to every endpoint, against the real Redis and PostgreSQL; a sweep
then puts every known poison in every field, parameter and header. The same
runs with PostgreSQL stopped (``/v1`` answers 503 with ``Retry-After``,
gateways their menu's "try later"), with Redis refusing connections, and with
PostgreSQL frozen (a 503 at the deadline, not a hung request).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import hypothesis
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

import ledger
from embedded_servers import EmbeddedServers
from ussd_service import api
from ussd_service.app import create_app
from ussd_service.backends import apply_migrations
from ussd_service.config import Settings

# Sends bytes the HTTP client would refuse to (tests/faults has no harness module).
from test_bad_input import raw_request  # isort: skip

MEMBERS = ("+79161234567", "+79161234568")
# Examples per test; each sends one request to every endpoint (about 25).
HEALTHY_EXAMPLES = 60
OUTAGE_EXAMPLES = 20
CREDENTIAL_EXAMPLES = 20
TOKEN = "api-token-0123456789abcdef"
SECRET = "gateway-secret-0123456789"
# Fixed examples (derandomize: the same inputs on every run and in CI).
FUZZ = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what to send ----------------------------------------------------------------

# Inputs that once caused a 5xx (see test_bad_input.py), mixed into everything.
POISON_TEXT = (
    "\x00",
    "a\x00b",
    "\ud800",
    "\u2028",
    "\u00b2",
    "9" * 40,
    "9999-12-31T23:59:59Z",
    "9999-12-31",
    "0001-01-01T00:00:00+05:00",
    "[" * 50,
)
POISON_BODIES = (
    b"[" * 5000,
    b'{"a":' * 3000,
    b"\xff\xfe\x00",
    b"null",
    b"",
    b"x" * 20_000,
)
CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded; charset=bogus",
    "application/json; charset=latin-1",
)
HEADER_NAMES = (
    "Authorization",
    "X-Gateway-Token",
    "Idempotency-Key",
    "X-Operator",
    "X-Request-ID",
    "X-Twilio-Signature",
    "X-Kannel-From",
    "X-Kannel-To",
    "X-Kannel-Coding",
)
# Field names every gateway and the API use: random forms and objects use them.
FIELD_NAMES = (
    "msisdn", "points", "reason", "idempotency_key", "expires_at", "session_id", "event",
    "input", "hop_id", "sessionId", "phoneNumber", "text", "CallSid", "From", "Digits",
    "from", "to", "id", "Type", "Message", "SessionId", "Mobile",
)  # fmt: skip

# Generated sizes stay small (hypothesis bounds the data of one example, and
# an example holds a request to every endpoint); long values are repeats.
long_text = st.tuples(st.sampled_from(["x", "ю", "9", "\x00"]), st.integers(150, 5000)).map(
    lambda pair: pair[0] * pair[1]
)
# Text the HTTP client can put in a header (no line breaks, no lone surrogates).
header_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12),
    st.sampled_from(["Bearer x", "Basic !!!", "Basic dTpw", f"Bearer {TOKEN}", SECRET, "é" * 5]),
)
text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(POISON_TEXT),
    st.sampled_from(MEMBERS),
    long_text,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=5,
)


def _types(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", "string")
    return kinds if isinstance(kinds, list) else [kinds]


def _valid(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values the schema allows, as a well-behaved client would send them."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = next((k for k in _types(schema) if k != "null"), "null")
    if kind == "integer":
        low = schema.get("minimum", 1)
        return st.integers(low, min(schema.get("maximum", 10**6), low + 10**4))
    if kind == "number":
        return st.floats(0, 1000)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return st.lists(_valid(schema.get("items", {})), max_size=2)
    if schema.get("format") in ("date-time", "date"):
        return _dates()
    if any(word in name.lower() for word in ("msisdn", "phone", "from", "mobile")):
        return st.sampled_from([*MEMBERS, "8 916 123-45-67", "+79161234569"])
    return st.text("abc0123456789*#", min_size=1, max_size=min(schema.get("maxLength", 8), 8))


def _wild(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Anything near or far from the schema: poisons (most often), bounds, wrong types."""
    options: list[st.SearchStrategy[Any]] = [st.sampled_from(POISON_TEXT)] * 3
    for kind in _types(schema):
        if kind == "integer":
            low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63)
            options += [st.integers(low - 2, low + 2), st.integers(high - 2, high + 2)]
        elif kind == "string":
            limit = schema.get("maxLength", 200)
            options += [st.text(max_size=12), st.integers(limit, limit + 2).map(lambda n: "7" * n)]
            if schema.get("format") in ("date-time", "date"):
                options = [_bad_dates()] * 3 + options
    return st.one_of(*options, json_values)


def _dates() -> st.SearchStrategy[str]:
    """Dates an operator would send: soon, as a plain date or with an offset."""
    today = datetime.now(UTC)
    days = st.integers(1, 1500).map(lambda n: today + timedelta(days=n))
    return st.one_of(days.map(lambda d: d.date().isoformat()), days.map(datetime.isoformat))


def _bad_dates() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["9999-12-31T23:59:59Z", "9999-12-31", "2001-01-01", "2027-02-30"]),
        st.dates().map(str),
        st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
        st.datetimes().map(datetime.isoformat),
    )


@st.composite
def _object(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    """A valid object; mostly with one or two fields made wild or dropped (or one added)."""
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    value: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {k: _valid(p, k) for k, p in properties.items() if k in required},
            optional={k: _valid(p, k) for k, p in properties.items() if k not in required},
        )
    )
    roll = draw(st.integers(0, 9))
    if not properties or roll < 2:  # as a well-behaved client sends it
        return value
    if roll == 2:  # with a field nobody asked for
        value[draw(st.sampled_from(FIELD_NAMES))] = draw(json_values)
        return value
    fields = st.lists(st.sampled_from(sorted(properties)), min_size=1, max_size=2, unique=True)
    for name in draw(fields):
        if draw(st.integers(0, 4)) == 0:
            value.pop(name, None)
        else:
            value[name] = draw(_wild(properties[name], name))
    return value


def _form(values: dict[str, Any]) -> bytes:
    """URL-encoded, lone surrogates and all (the server must refuse those)."""
    return urlencode({k: str(v) for k, v in values.items()}, errors="surrogatepass").encode()


@dataclass
class Endpoint:
    """One route of the app, with what its OpenAPI operation says about it."""

    method: str
    template: str
    operation: dict[str, Any] = field(default_factory=dict)


def endpoints(app: web.Application, document: dict[str, Any]) -> list[Endpoint]:
    """Every route of the app's router (HEAD aside), each with its OpenAPI operation."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        template = resource.canonical
        operation = document["paths"].get(template, {}).get(route.method.lower(), {})
        found.append(Endpoint(route.method, template, operation))
    return sorted(found, key=lambda e: (e.template, e.method))


@dataclass
class Case:
    """One request: what the fuzzer sends to one endpoint."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None


_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _param_schema(operation: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == name and parameter["in"] == where:
            return dict(parameter.get("schema", {}))
    return {}


@st.composite
def cases(draw: st.DrawFn, endpoint: Endpoint) -> Case:
    """A request to ``endpoint``: from its schemas, or garbage, or a known poison."""
    operation = endpoint.operation
    method = draw(st.sampled_from([endpoint.method] * 9 + ["PUT", "DELETE", "GET", "POST"]))

    def path_value(match: re.Match[str]) -> str:
        name = match.group(1)
        value = draw(
            st.one_of(
                _valid(_param_schema(operation, name, "path"), name).map(str),
                _wild(_param_schema(operation, name, "path"), name).map(str),
                st.sampled_from(["1", "2", *MEMBERS, "%00", "\x00", "\u00b2", "9" * 5000, ".."]),
                st.text(min_size=1, max_size=12),
            ),
            label=name,
        )
        return quote(value, safe="", errors="surrogatepass") or "x"

    path = _PARAM.sub(path_value, endpoint.template)
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and draw(st.booleans()):
            schema = parameter.get("schema", {})
            query[parameter["name"]] = draw(st.one_of(_valid(schema), _wild(schema)))
    extra = st.dictionaries(st.sampled_from(["limit", "status", "seq", "x"]), text, max_size=2)
    query.update(draw(extra))
    raw_query = draw(st.sampled_from(["", "", "", "limit=%ff%fe", "a=%00&a=1", "status=%C2%B2"]))
    query_string = "&".join(filter(None, [_form(query).decode(), raw_query]))
    target = f"{path}?{query_string}" if query_string else path

    headers = draw(st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=2))
    body_kind = draw(st.sampled_from(["schema"] * 4 + ["none", "json", "form", "bytes", "poison"]))
    content = operation.get("requestBody", {}).get("content", {})
    body: bytes | None = None
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if body_kind == "schema" and content:
        content_type = draw(st.sampled_from(sorted(content)))
        value = draw(_valid(content[content_type].get("schema", {})))
        if content_type.endswith("json"):
            body = json.dumps(value).encode()
        elif isinstance(value, dict):
            body = _form(value)
        else:
            body = str(value).encode("utf-8", "surrogatepass")
    elif body_kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "form":
        body = _form(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), text, max_size=6)))
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=64))
    elif body_kind == "poison":
        body = draw(st.sampled_from(POISON_BODIES))
    if body is not None:
        headers.setdefault("Content-Type", content_type)
    return Case(method, target, headers, body)


# -- how to send it and what must come back -------------------------------------


# Where an outage may show as a 503: the API, readiness, and the gateway's
# delivery-report callback (no subscriber reads it; the gateway may retry).
# Everywhere else a subscriber gets the menu's "try later" screen.
# The web pages (/account, /operator) show a "try later" page with a 503.
OUTAGE_503_PATHS = ("/v1/", "/readyz", "/sms/dlr", "/account", "/operator")


def _is_v1(target: str) -> bool:
    return target.startswith("/v1/")


async def send(client: TestClient, case: Case) -> tuple[int, dict[str, str], str]:
    resp = await client.request(
        case.method,
        case.target,
        data=case.body,
        headers=case.headers,
        skip_auto_headers={"Content-Type"},
    )
    return resp.status, dict(resp.headers), await resp.text(errors="replace")


def check_answer(
    case: Case, status: int, headers: dict[str, str], body: str, *, down: bool
) -> None:
    """4xx answers say what is wrong in one line; 503 only where an outage may show."""
    where = (case.method, case.target[:120], status, body[:300])
    if status == 503 and down:
        assert case.target.startswith(OUTAGE_503_PATHS), where
        if _is_v1(case.target):
            assert headers.get("Retry-After", "").isdigit(), where
    else:
        assert status < 500, where
    assert "Traceback" not in body, where
    if 400 <= status < 500:
        assert body.strip().count("\n") == 0, where
        if _is_v1(case.target) and headers.get("Content-Type", "").startswith("application/json"):
            assert isinstance(json.loads(body).get("error"), str), where


async def app_endpoints(client: TestClient) -> list[Endpoint]:
    """The running app's routes, each with its operation from ``/openapi.json``."""
    document = await (await client.get("/openapi.json")).json()
    app = client.server.app
    assert app is not None
    routes = endpoints(app, document)
    # The document describes exactly the router (both are the app's own).
    assert {e.template for e in routes} == set(document["paths"])
    return routes


async def send_all(client: TestClient, requests: Iterable[Case], *, down: bool = False) -> int:
    """Send each request and check its answer; no error logged meanwhile. How many sent."""
    sent = 0
    with structlog.testing.capture_logs() as logs:
        for case in requests:
            status, headers, body = await send(client, case)
            check_answer(case, status, headers, body, down=down)
            sent += 1
    bugs = [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]
    assert not bugs, bugs[:3]
    assert (await client.get("/healthz")).status == 200
    return sent


async def fuzz_once(client: TestClient, data: st.DataObject, *, down: bool = False) -> None:
    """One request to every endpoint of the running app."""
    routes = await app_endpoints(client)
    await send_all(
        client,
        (data.draw(cases(e), label=f"{e.method} {e.template}") for e in routes),
        down=down,
    )


# -- every poison in every place -----------------------------------------------------

WRONG_TYPES: tuple[Any, ...] = (None, True, 2**80, -1, 1.5, [], {}, ["x"], {"a": 1})
PATH_POISONS = ("\x00", "\u00b2", "9" * 5000, "\udc80", "..", " ", f"{MEMBERS[0]}\x00", "-1")
HEADER_POISONS = ("\u00e9", "\u00b2" * 3, "x" * 9000, "Bearer \u00e9")
_unique = itertools.count()


def _example(schema: dict[str, Any], name: str = "") -> Any:
    """A valid value for the schema (distinct keys and ids, so each request does something)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = next((k for k in _types(schema) if k != "null"), "null")
    if kind == "integer":
        return max(schema.get("minimum", 1), min(100, schema.get("maximum", 100)))
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(p, k) for k, p in props.items()}
    if schema.get("format") in ("date-time", "date"):
        soon = datetime.now(UTC) + timedelta(days=30)
        return soon.isoformat() if schema["format"] == "date-time" else soon.date().isoformat()
    if any(word in name.lower() for word in ("msisdn", "phone", "from", "mobile")):
        return MEMBERS[0]
    if re.search(r"(id|key|sid)$", name, re.IGNORECASE):
        return f"s{next(_unique)}"
    # Menu keys, SMS text, a reason: "1" is valid for every other text field.
    return {"event": "begin", "Type": "Initiation"}.get(name, "1")


def _encode(content_type: str, value: Any) -> bytes:
    if content_type.endswith("json"):
        return json.dumps(value).encode()
    return _form(value) if isinstance(value, dict) else str(value).encode()


def poisoned(endpoint: Endpoint) -> Iterator[Case]:
    """Each known poison in each field, path parameter, query parameter and header."""
    operation = endpoint.operation

    def target(**overrides: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            raw = overrides.get(name, str(_example(_param_schema(operation, name, "path"), name)))
            return quote(raw, safe="", errors="surrogatepass") or "x"

        return _PARAM.sub(value, endpoint.template)

    base = target()
    content = operation.get("requestBody", {}).get("content", {})
    for content_type, media in content.items():
        schema = media.get("schema", {})
        headers = {"Content-Type": content_type}
        for name in schema.get("properties", {}):
            for poison in (*POISON_TEXT, *WRONG_TYPES):
                body = {**_example(schema), name: poison}
                yield Case(endpoint.method, base, headers, _encode(content_type, body))
        for poison_body in POISON_BODIES:
            yield Case(endpoint.method, base, headers, poison_body)

    queries = [p for p in operation.get("parameters", []) if p["in"] == "query"]

    def valid(path: str, query: dict[str, Any] | None = None, **headers: str) -> Case:
        """A valid request (query, body and all) but for the one poison given."""
        values = {p["name"]: _example(p.get("schema", {}), p["name"]) for p in queries}
        url = f"{path}?{_form({**values, **(query or {})}).decode()}" if queries else path
        if not content:
            return Case(endpoint.method, url, headers, None)
        content_type, media = next(iter(content.items()))
        body = _encode(content_type, _example(media.get("schema", {})))
        return Case(endpoint.method, url, {"Content-Type": content_type, **headers}, body)

    yield valid(base)
    for name in _PARAM.findall(endpoint.template):
        for poison in PATH_POISONS:
            yield valid(target(**{name: poison}))
    for parameter in queries:
        for poison in POISON_TEXT:
            yield valid(base, {parameter["name"]: poison})
    for header in HEADER_NAMES:
        for poison in HEADER_POISONS:
            yield valid(base, **{header: poison})


async def _members_readable(client: TestClient) -> None:
    """Every way a member is read still works: API, SMS, menu."""
    for number in MEMBERS:
        resp = await client.get(f"/v1/subscribers/{number}")
        assert resp.status == 200, await resp.text()
        resp = await client.get(f"/v1/subscribers/{number}/history")
        assert resp.status == 200, await resp.text()
        sms = await client.post(
            "/sms/inbound", data={"from": number, "to": "4555", "text": "BALANCE"}
        )
        assert sms.status == 200, await sms.text()
        session = f"readable-{next(_unique)}"
        for event, keys in (("begin", None), ("input", "1")):
            hop = {"session_id": session, "msisdn": number, "event": event, "input": keys}
            resp = await client.post("/ussd", json=hop)
            assert resp.status == 200, await resp.text()


async def test_every_known_poison_everywhere_is_a_4xx(
    seeded: TestClient, pg_pool: asyncpg.Pool
) -> None:
    """The inputs that once caused a 5xx, in every place of every endpoint."""
    sent = 0
    for endpoint in await app_endpoints(seeded):
        sent += await send_all(seeded, poisoned(endpoint))
    assert sent > 1000
    await _members_readable(seeded)
    assert await ledger.check(pg_pool) == []


async def _members(pool: asyncpg.Pool) -> None:
    for number in MEMBERS:
        await ledger.enroll(pool, number, key=f"fuzz-enroll:{number}")
        await ledger.accrue(pool, number, 5_000, key=f"fuzz-accrue:{number}")


# -- healthy backends -------------------------------------------------------------


@pytest.fixture
async def seeded(client: TestClient, pg_pool: asyncpg.Pool) -> TestClient:
    await _members(pg_pool)
    return client


@hypothesis.settings(FUZZ, max_examples=HEALTHY_EXAMPLES)
@given(data=st.data())
async def test_no_endpoint_answers_5xx_and_the_app_stays_healthy(
    seeded: TestClient, pg_pool: asyncpg.Pool, data: st.DataObject
) -> None:
    await fuzz_once(seeded, data)
    ready = await seeded.get("/readyz")
    assert ready.status == 200, await ready.text()
    # Nothing the fuzz sent broke the ledger or made a member unreadable.
    assert await ledger.check(pg_pool) == []
    await _members_readable(seeded)


@pytest.fixture
async def guarded_client(
    settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[TestClient]:
    """The app with every credential configured: the fuzz meets the checks first."""
    await _members(pg_pool)
    configured = settings.model_copy(
        update={"api_token": TOKEN, "gateway_secret": SECRET, "twilio_auth_token": SECRET}
    )
    async with TestClient(TestServer(create_app(configured, background=False))) as client:
        yield client


@hypothesis.settings(FUZZ, max_examples=CREDENTIAL_EXAMPLES)
@given(data=st.data())
async def test_credentials_of_any_shape_are_a_4xx(
    guarded_client: TestClient, data: st.DataObject
) -> None:
    await fuzz_once(guarded_client, data)


RAW_HEADER_VALUES = (b"\xff\xfe\xc3(", b"\x80", b"Bearer \xff", b"Basic \xc3", b"t\xc3\xa9st")


async def test_header_bytes_that_are_not_text_are_a_4xx(guarded_client: TestClient) -> None:
    """Bytes the HTTP client would refuse to send, in every header the app reads."""
    for endpoint in await app_endpoints(guarded_client):
        path = _PARAM.sub("1", endpoint.template).encode()
        for name in HEADER_NAMES:
            for value in RAW_HEADER_VALUES:
                head = b"%s %s HTTP/1.1\r\nHost: x\r\n%s: %s" % (
                    endpoint.method.encode(),
                    path,
                    name.encode(),
                    value,
                )
                status, _, body = await raw_request(guarded_client, head, b"{}")
                assert status < 500, (endpoint.template, name, value, body[:200])
    assert (await guarded_client.get("/healthz")).status == 200


# -- backends down ----------------------------------------------------------------


async def test_every_known_poison_with_redis_down_is_a_4xx_or_a_503(
    settings: Settings, pg_pool: asyncpg.Pool, unused_tcp_port: int
) -> None:
    """Redis refusing connections: gateways end the session politely, /v1 answers."""
    await _members(pg_pool)
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{unused_tcp_port}/0"})
    async with TestClient(TestServer(create_app(no_redis, background=False))) as client:
        for endpoint in await app_endpoints(client):
            await send_all(client, poisoned(endpoint), down=True)
        resp = await client.get(f"/v1/subscribers/{MEMBERS[0]}")
        assert resp.status == 200, await resp.text()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedServers]:
    """A PostgreSQL server of this module alone, so stopping it harms no other test."""
    data_dir = Path(tempfile.mkdtemp(prefix="ussd-fuzz-pg-"))
    servers = EmbeddedServers(data_dir, durable=False, redis=False)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _postgres_processes(servers: EmbeddedServers) -> list[int]:
    """The postmaster and every backend it forked (all of them must freeze)."""
    pid = servers.pids[0]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@pytest.fixture
async def outage_client(
    own_postgres: EmbeddedServers, settings: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[TestClient, EmbeddedServers]]:
    """The app on the module's PostgreSQL (migrated, two members); running again after."""
    urls = own_postgres.start()
    await apply_migrations(urls.database_url)
    pool = await asyncpg.create_pool(urls.database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await _members(pool)
    finally:
        await pool.close()
    configured = settings.model_copy(update={"database_url": urls.database_url})
    try:
        async with TestClient(TestServer(create_app(configured, background=False))) as client:
            yield client, own_postgres
    finally:
        if own_postgres.pids:
            _signal_all(_postgres_processes(own_postgres), signal.SIGCONT)
        own_postgres.start()


@hypothesis.settings(FUZZ, max_examples=OUTAGE_EXAMPLES)
@given(data=st.data())
async def test_with_postgres_stopped_v1_is_a_503_and_nothing_else_fails(
    outage_client: tuple[TestClient, EmbeddedServers], data: st.DataObject
) -> None:
    client, servers = outage_client
    servers.stop()
    try:
        await fuzz_once(client, data, down=True)
        for number in MEMBERS:
            resp = await client.get(f"/v1/subscribers/{number}")
            assert resp.status == 503, await resp.text()
            assert resp.headers["Retry-After"].isdigit()
    finally:
        servers.start()
    # Back in service once PostgreSQL is: the outage lost nothing.
    resp = await client.get(f"/v1/subscribers/{MEMBERS[0]}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["balance"]["available"] >= 5_000


async def test_every_known_poison_with_postgres_stopped_is_a_4xx_or_a_503(
    outage_client: tuple[TestClient, EmbeddedServers],
) -> None:
    client, servers = outage_client
    servers.stop()
    try:
        for endpoint in await app_endpoints(client):
            await send_all(client, poisoned(endpoint), down=True)
    finally:
        servers.start()
    assert (await client.get(f"/v1/subscribers/{MEMBERS[0]}")).status == 200


async def test_with_postgres_frozen_v1_is_a_503_at_the_deadline(
    outage_client: tuple[TestClient, EmbeddedServers], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, servers = outage_client
    monkeypatch.setattr(api, "DEADLINE_S", 0.5)
    assert (await client.get(f"/v1/subscribers/{MEMBERS[0]}")).status == 200
    frozen = _postgres_processes(servers)
    _signal_all(frozen, signal.SIGSTOP)
    try:
        loop = asyncio.get_running_loop()
        for path in (f"/v1/subscribers/{MEMBERS[0]}", "/v1/handoffs", "/v1/outbox"):
            started = loop.time()
            resp = await client.get(path)
            assert resp.status == 503, await resp.text()
            assert resp.headers["Retry-After"].isdigit()
            assert loop.time() - started < 0.5 + 1.5
    finally:
        _signal_all(frozen, signal.SIGCONT)
    assert (await client.get(f"/v1/subscribers/{MEMBERS[0]}")).status == 200
