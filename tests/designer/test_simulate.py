"""``simulate`` driven through stdin: a full gift conversation on each channel."""

# ruff: noqa: RUF001 - the subscriber-facing texts are Russian
from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import asyncpg

import ledger
from designer.simulator import SimulatorOptions, Terminal, serve_app, simulate_against
from ussd_service.app import create_app
from ussd_service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ussd-service")
ME = "+79161000001"
FRIEND = "+79162000002"


async def _members(pool: asyncpg.Pool, points: int = 1000) -> None:
    for number, balance in ((ME, points), (FRIEND, 0)):
        await ledger.enroll(pool, number, key=f"t-enroll-{number}")
        if balance:
            await ledger.accrue(pool, number, balance, key=f"t-accrue-{number}")


async def _drive(base_url: str, options: SimulatorOptions, script: str, pool: asyncpg.Pool) -> str:
    out = io.StringIO()
    term = Terminal(io.StringIO(script), out, interactive=False)
    await simulate_against(base_url, options, term, pool)
    return out.getvalue()


async def test_ussd_gift_through_stdin(settings: Settings, pg_pool, redis_client) -> None:
    await _members(pg_pool)
    script = "\n4\n89162000002\n150\n1\n"
    async with serve_app(settings) as url:
        output = await _drive(url, SimulatorOptions(channel="ussd", msisdn=ME), script, pg_pool)
    # Each page in a box with its size line; the session followed to its end.
    assert "│Bonus points" not in output
    assert "│Бонусы" in output
    assert "│Номер получателя (8916...):   │" in output
    assert "│Подарить 150 баллов на +7 916 │" in output
    assert " CON · 72 chars, UCS-2, limit 80" in output
    assert "│Подарок отправлен. Его можно  │" in output
    assert " END · " in output
    # After the END the phone offers to dial again; EOF ends cleanly.
    assert output.rstrip().endswith("dial [*111*455#]>")
    summary = await ledger.subscriber_summary(pg_pool, ME)
    assert summary is not None
    assert summary.balance.available == 850


async def test_ussd_shortcut_and_english(settings: Settings, pg_pool, redis_client) -> None:
    await _members(pg_pool)
    script = "*111*455*4*89162000002*150#\n1\nq\n"
    async with serve_app(settings) as url:
        options = SimulatorOptions(channel="ussd", msisdn=ME, language="en")
        output = await _drive(url, options, script, pg_pool)
    assert "│Give 150 points to +7 916     │" in output
    assert "GSM-7, limit 182" in output
    assert "│Gift sent. The recipient can  │" in output


async def test_ivr_gift_through_stdin(settings: Settings, pg_pool, redis_client) -> None:
    await _members(pg_pool)
    # Call, a timeout (empty line), gift 150 to the friend, confirm.
    script = "\n\n4\n89162000002#\n150#\n1\n"
    async with serve_app(settings) as url:
        output = await _drive(url, SimulatorOptions(channel="ivr", msisdn=ME), script, pg_pool)
    assert "  (say) Бонусы" in output
    assert "  (say) Баланс — нажмите 1." in output
    assert "[waiting for 1 key, timeout 6 s; empty line = no keys]" in output
    assert "  (no keys: timeout)" in output
    assert "[waiting for keys, then #" in output
    assert "  (say) Подарить 150 баллов на номер +7 916 200 00 02?" in output
    assert "  (say) Подарок отправлен." in output
    assert "  (hang up)" in output
    summary = await ledger.subscriber_summary(pg_pool, ME)
    assert summary is not None
    assert summary.balance.available == 850


async def test_sms_gift_through_stdin(settings: Settings, pg_pool, redis_client) -> None:
    await _members(pg_pool)
    app = create_app(settings, background=False)
    script = "ДАР 89162000002 150\nБАЛАНС\n"
    async with serve_app(settings, app=app) as url:
        output = await _drive(url, SimulatorOptions(channel="sms", msisdn=ME), script, pg_pool)
    assert "sms to 4555> ДАР 89162000002 150" in output
    assert "  < Подарок 150 баллов отправлен." in output
    assert "  < Баланс: 850 баллов." in output
    # The friend's notification is queued for them, not shown to this phone.
    assert "[notification]" not in output


async def test_sms_shows_notifications_to_this_number(
    settings: Settings, pg_pool, redis_client
) -> None:
    await _members(pg_pool)
    await ledger.gift(pg_pool, ME, FRIEND, 40, key="t-gift")
    app = create_app(settings, background=False)
    async with serve_app(settings, app=app) as url:
        output = await _drive(
            url, SimulatorOptions(channel="sms", msisdn=FRIEND), "\nДАР\n", pg_pool
        )
    assert "Принято: 40 баллов." in output
    assert "[notification] gift_accepted" not in output  # that one is to the sender


async def test_cli_against_a_running_service(settings: Settings, pg_pool, redis_client) -> None:
    """The real command (``--url``), as a process reading a pipe: no terminal needed."""
    await _members(pg_pool)
    async with serve_app(settings) as url:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "simulate",
            "--url",
            url,
            "--msisdn",
            "8 916 100-00-01",
            "--channel",
            "ivr",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        out, err = await asyncio.wait_for(proc.communicate(b"\n1\n"), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "  (say) Баланс: 1 000 баллов" in text.replace("\u00a0", " ")


async def test_cli_in_process_mode(servers, database_url: str, redis_client) -> None:
    """Without --url: the app is served on a free loopback port in the process itself."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": servers.redis_url,
        "DATABASE_URL": database_url,
    }
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "simulate",
        "--lang",
        "en",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"\n1\n2\n"), 90)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "│You are not in the bonus      │" in text
    assert "│Join the bonus programme? It  │" in text
    assert "│Goodbye!" in text
