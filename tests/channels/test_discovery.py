"""The new dialects are units: discovered, served and documented with nothing else edited."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from ussd_service.channels import DIALECTS, dialect


def test_both_dialects_are_discovered() -> None:
    names = {d.name: d for d in DIALECTS}
    assert names["hubtel"].channel == "ussd"
    assert names["voicexml"].channel == "ivr"
    assert dialect("hubtel").session is not None
    assert dialect("voicexml").session is not None
    routes = {(r.method, r.path) for d in DIALECTS for r in d.routes}
    assert {
        ("POST", "/ussd/hubtel"),
        ("GET", "/ivr/voicexml"),
        ("POST", "/ivr/voicexml"),
        ("POST", "/ivr/voicexml/hangup"),
    } <= routes


async def test_the_app_serves_every_route_of_both(client: TestClient) -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
    }
    for name in ("hubtel", "voicexml"):
        for route in dialect(name).routes:
            assert (route.method, route.path) in served


async def _document(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    document: dict[str, Any] = await resp.json()
    return document


async def test_hubtel_is_in_the_openapi_document(client: TestClient) -> None:
    operation = (await _document(client))["paths"]["/ussd/hubtel"]["post"]
    assert operation["tags"] == ["gateways"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["Type"]["enum"] == ["Initiation", "Response", "Release", "Timeout"]
    assert set(body["required"]) == {"Type", "SessionId", "Mobile", "ServiceCode"}
    reply = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["properties"]["Type"]["enum"] == ["Response", "Release"]
    assert {"400", "401", "403", "413"} <= set(operation["responses"])


async def test_voicexml_is_in_the_openapi_document(client: TestClient) -> None:
    paths = (await _document(client))["paths"]
    assert set(paths["/ivr/voicexml"]) == {"get", "post"}
    fetch = paths["/ivr/voicexml"]["get"]
    parameters = {p["name"]: p for p in fetch["parameters"]}
    assert set(parameters) == {"session", "caller", "called", "digits", "seq", "timeout"}
    assert [n for n, p in parameters.items() if p.get("required")] == ["session", "caller"]
    assert "application/voicexml+xml" in fetch["responses"]["200"]["content"]
    submit = paths["/ivr/voicexml"]["post"]
    form = submit["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(form["properties"]) == {"session", "caller", "called", "digits"}
    assert {p["name"] for p in submit["parameters"]} == {"seq", "timeout"}
    hangup = paths["/ivr/voicexml/hangup"]["post"]
    assert "400" in hangup["responses"]
