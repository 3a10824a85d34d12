"""The application shell: health, readiness, metrics, API description, request context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from ussd_service.app import create_app
from ussd_service.channels import DIALECTS
from ussd_service.config import Settings
from ussd_service.menu_files import load_menus
from ussd_service.openapi import PATHS

MENU_FILE = Path(__file__).resolve().parents[1] / "menu_definitions.yaml"


async def test_healthz_and_readyz_answer_with_real_servers(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["menu"] == "ok"
    assert body["menu_version"] == load_menus(MENU_FILE).current.version


async def test_readyz_is_503_not_500_when_postgres_is_unreachable(servers, tmp_path) -> None:
    settings = Settings(
        redis_url=servers.redis_url,
        database_url=f"postgresql://postgres@/nowhere?host={tmp_path}",
        menu_file=MENU_FILE,
    )
    async with TestClient(TestServer(create_app(settings, background=False))) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
    assert resp.status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["postgres"].startswith("error")


async def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/no/such/path")
    text = await (await client.get("/metrics")).text()
    assert 'ussd_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'ussd_http_request_duration_seconds_bucket{le="0.005",route="/healthz"}' in text


async def test_openapi_describes_exactly_the_routes_of_the_app(client: TestClient) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    served = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    gateway_paths = {route.path for dialect in DIALECTS for route in dialect.routes}
    assert set(document["paths"]) == set(PATHS) | gateway_paths
    assert {"/ussd/africastalking", "/ussd", "/ivr/twilio", "/sms/inbound"} <= gateway_paths


def test_the_health_endpoints_import_neither_the_worker_nor_the_command_line() -> None:
    probe = (
        "import sys, ussd_service.health; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('ussd_service'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "ussd_service.health" in out
    assert not {"ussd_service.notifier", "ussd_service.cli", "ussd_service.workers"} & set(out)


async def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    generated = resp.headers["X-Request-ID"]
    assert len(generated) == 32
    assert generated != "x" * 500
