"""The operators' console over HTTP, and ``ussd-service operator add``."""

# ruff: noqa: RUF001 - the Russian pages are what these tests read

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from web_harness import csrf_of, form_fields

import ledger
from ussd_service.web import limits
from ussd_service.web.operators import set_operator
from ussd_service.web.passwords import hash_password

CLI = str(Path(sys.executable).parent / "ussd-service")
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def _operator_add(
    name: str, password: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "operator", "add", name],
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,  # no terminal: the prompt reads stdin
    )


async def test_operator_add_creates_and_resets_an_argon2_account(
    servers, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": servers.redis_url}
    created = _operator_add("Alice", PASSWORD, env)
    assert created.returncode == 0, created.stderr
    assert "operator alice: created" in created.stdout
    row = await pg_pool.fetchrow("SELECT password_hash, password_set_at FROM operators")
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]
    reset = _operator_add("alice", PASSWORD + "!", env)
    assert "operator alice: password reset" in reset.stdout
    again = await pg_pool.fetchrow("SELECT password_hash, password_set_at FROM operators")
    assert again["password_hash"] != row["password_hash"]
    assert again["password_set_at"] > row["password_set_at"]
    short = _operator_add("bob", "short", env)
    assert short.returncode != 0
    assert "12" in short.stderr


async def _sign_in(client: TestClient, name: str, password: str) -> tuple[int, str]:
    page = await (await client.get("/operator/login")).text()
    resp = await client.post(
        "/operator/login", data={"name": name, "password": password, "csrf_token": csrf_of(page)}
    )
    return resp.status, await resp.text()


async def _waiting_handoff(client: TestClient, msisdn: str) -> None:
    """A USSD caller, not a member yet, asks for an operator (native JSON gateway)."""
    session = f"s-{msisdn}"
    for event, keys in (("begin", None), ("input", "3")):  # join menu: 3. Operator
        resp = await client.post(
            "/ussd", json={"session_id": session, "msisdn": msisdn, "event": event, "input": keys}
        )
        assert resp.status == 200, await resp.text()


async def _audit(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT action FROM operator_audit ORDER BY id")
    return [r["action"] for r in rows]


async def test_sign_in_claim_card_enrol_close_all_audited(
    web_client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await set_operator(pg_pool, "alice", hash_password(PASSWORD))
    status, page = await _sign_in(web_client, "alice", "wrong password!")
    assert status == 422
    assert "Неверное имя или пароль" in page
    status, page = await _sign_in(web_client, "alice", PASSWORD)
    assert status == 200
    assert "Очередь пуста" in page
    await _waiting_handoff(web_client, "+79035550022")
    queue = await (await web_client.get("/operator/queue")).text()
    assert "+7 903 555-00-22" in queue
    assert "Ждёт 1 абонент" in queue
    handoff_id = await pg_pool.fetchval("SELECT id FROM handoffs")
    claim = form_fields(queue, f"/operator/handoffs/{handoff_id}/claim")
    resp = await web_client.post(f"/operator/handoffs/{handoff_id}/claim", data=claim)
    page = await resp.text()
    assert resp.url.path == f"/operator/handoffs/{handoff_id}"
    breadcrumb = await pg_pool.fetchval("SELECT breadcrumb::text FROM handoffs")
    assert breadcrumb != "[]"
    assert 'id="breadcrumb"' in page
    assert "Номер не знаком" in page or "Не в программе" in page
    # Enrol the caller from the card.
    enrol = form_fields(page, "/operator/subscribers/%2B79035550022/enrol")
    resp = await web_client.post(
        "/operator/subscribers/%2B79035550022/enrol", data={**enrol, "language": "ru"}
    )
    assert "подключён" in await resp.text()
    assert (await ledger.get_subscriber(pg_pool, "+79035550022")).status == "active"
    op_id = await pg_pool.fetchval("SELECT op_id FROM operations WHERE kind = 'enroll'")
    assert op_id.startswith("help_desk:operator-")
    page = await (await web_client.get(f"/operator/handoffs/{handoff_id}")).text()
    close = form_fields(page, f"/operator/handoffs/{handoff_id}/close")
    await web_client.post(f"/operator/handoffs/{handoff_id}/close", data=close)
    assert await pg_pool.fetchval("SELECT status FROM handoffs") == "closed"
    actions = await _audit(pg_pool)
    assert actions[:3] == ["sign_in_failed", "sign_in", "claim"]
    assert {"view_subscriber", "enrol", "close"} <= set(actions)
    row = await pg_pool.fetchrow("SELECT * FROM operator_audit WHERE action = 'enrol'")
    assert (row["channel"], row["msisdn"], row["operator_name"]) == (
        "help_desk",
        "+79035550022",
        "alice",
    )
    # The audit log is append-only.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg_pool.execute("DELETE FROM operator_audit")


async def test_a_password_reset_signs_the_operator_out(
    web_client: TestClient, pg_pool: asyncpg.Pool
) -> None:
    await set_operator(pg_pool, "bob", hash_password(PASSWORD))
    status, _ = await _sign_in(web_client, "bob", PASSWORD)
    assert status == 200
    assert (await web_client.get("/operator", allow_redirects=False)).status == 200
    await set_operator(pg_pool, "bob", hash_password(PASSWORD + "2"))
    resp = await web_client.get("/operator", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/operator/login"


async def test_failed_sign_ins_lock_the_name_for_a_while(
    web_client: TestClient, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    await set_operator(pg_pool, "carol", hash_password(PASSWORD))
    for _ in range(limits.OPERATOR_FAILURES_PER_NAME):
        status, _ = await _sign_in(web_client, "carol", "not the password")
        assert status == 422
    status, page = await _sign_in(web_client, "carol", PASSWORD)
    assert status == 429
    assert "Слишком много неудачных попыток" in page
    assert await redis_client.exists("web:operator-signin:{carol}")


async def test_the_console_needs_a_signed_in_operator(web_client: TestClient) -> None:
    for path in ("/operator", "/operator/queue", "/operator/subscribers", "/operator/handoffs/1"):
        resp = await web_client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"] == "/operator/login"
    page = await (await web_client.get("/operator/login")).text()
    resp = await web_client.post(
        "/operator/handoffs/1/claim", data={"csrf_token": csrf_of(page)}, allow_redirects=False
    )
    assert resp.status == 303
