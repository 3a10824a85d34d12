"""kill -9 mid-load, of `serve`, of its PostgreSQL, of its Redis: nothing lost, nothing doubled.

Each test runs `serve` as a real process over a fresh data directory (durable
mode), enrols members and gives them points through the API, then runs a
journaled load (``journal``): SMS gifts, USSD gift confirmations and accruals
from a few concurrent clients. Mid-load one process gets SIGKILL: `serve`
itself (then a new `serve` on the same port and data directory, as systemd
would), or one of its embedded servers (which `serve` restarts). Once ready
again, every op without a definite answer is resent with the same message
ids, hop ids and idempotency keys until it gets one. Then the journal and the
ledger must agree: every acknowledged effect exactly once, nothing for a
refusal, points conserved, `ledger check` clean, and no 5xx but the API's
documented 503 (with Retry-After) while PostgreSQL is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from journal import (
    CLI,
    HTTP_TIMEOUT_S,
    Client,
    Journal,
    LedgerState,
    Op,
    Plan,
    ServeProcess,
    alive,
    database_url,
    load_worker,
    read_ledger,
    resend_all,
)

MEMBERS = 30
POOR_MEMBERS = 6  # too few points for most gifts: refusals in the load
POINTS = 3000
POOR_POINTS = 25
CLIENTS = 6
# The kill comes once the load is flowing; the load goes on this long after ready.
ACKED_BEFORE_KILL = 25
# The kill lands this long after a USSD confirmation was sent (waited for at most
# TRIPWIRE_WAIT_S): the hop is inside the service, its gift may be half done.
TRIPWIRE_WAIT_S = 3.0
KILL_OFFSET_S = 0.003
BURST = 24
LOAD_AFTER_READY_S = 1.0
BACK_TO_READY_S = 30.0
EXIT_GRACE_S = 10.0
RESEND_DEADLINE_S = 40.0
SERVER_NAMES = {"postgres": "postgres", "redis": "redis-server"}
SEEDS = {"serve": 1, "postgres": 2, "redis": 3}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    ends_at = time.monotonic() + timeout_s
    while time.monotonic() < ends_at:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return False


async def _ready(http: aiohttp.ClientSession, base_url: str) -> bool:
    try:
        async with http.get(base_url + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def _server_pid(service: ServeProcess, name: str) -> int | None:
    try:
        return service.server(name).pid
    except (ValueError, psutil.Error):
        return None


@dataclass
class Run:
    """What happened around the kill."""

    back_to_ready_s: float
    family_gone_s: float | None
    members: list[str]
    balances: dict[str, dict[str, int]]
    unanswered: list[Op]
    confirm_in_flight: str | None


async def _kill_and_wait_back(
    service: ServeProcess,
    victim: str,
    http: aiohttp.ClientSession,
    base_url: str,
    moment: Callable[[], Awaitable[None]],
    just_killed: Callable[[], None],
) -> tuple[float, float | None]:
    """kill -9 ``victim`` once ``moment()`` returns; seconds until ready again (and until
    serve's family was gone).

    The victim is looked up first, so the kill itself is one system call.
    ``just_killed`` runs right after the signal, before anything is waited for.
    """
    family_gone_s = None
    if victim == "serve":
        family = service.family()
        await moment()
        killed_at = time.monotonic()
        service.kill()
        just_killed()
        # The embedded servers die with their parent; a new serve starts over them.
        gone = await _until(lambda: not any(alive(pid) for pid in family), EXIT_GRACE_S)
        survivors = [pid for pid in family if alive(pid)]
        assert gone, f"still running {EXIT_GRACE_S} s after kill -9 of serve: {survivors}"
        family_gone_s = time.monotonic() - killed_at
        await asyncio.to_thread(service.spawn)
        back = await _until_ready(service, http, base_url, lambda: True)
    else:
        name = SERVER_NAMES[victim]
        old = service.server(name)
        await moment()
        killed_at = time.monotonic()
        old.kill()
        just_killed()
        assert await _until(lambda: not alive(old.pid), EXIT_GRACE_S)
        back = await _until_ready(
            service, http, base_url, lambda: _server_pid(service, name) not in (None, old.pid)
        )
    assert back, f"not ready {BACK_TO_READY_S} s after kill -9 of {victim}:\n{service.output()}"
    return time.monotonic() - killed_at, family_gone_s


async def _until_ready(
    service: ServeProcess,
    http: aiohttp.ClientSession,
    base_url: str,
    replaced: Callable[[], bool],
) -> bool:
    ends_at = time.monotonic() + BACK_TO_READY_S
    while time.monotonic() < ends_at:
        if service.proc is not None and service.proc.poll() is not None:
            return False
        if replaced() and await _ready(http, base_url):
            return True
        await asyncio.sleep(0.05)
    return False


async def _scenario(service: ServeProcess, journal: Journal, victim: str) -> Run:
    base_url = f"http://127.0.0.1:{service.port}"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        client = Client(base_url, journal, http)

        # Members and their points, through the API, journaled like the rest.
        members = [f"+7916100{i:04d}" for i in range(1, MEMBERS + 1)]
        strangers = [f"+7916900{i:04d}" for i in range(1, 6)]
        enrolments = [journal.add(Op(f"enrol-{m}", "enroll", m)) for m in members]
        await asyncio.gather(*(client.attempt(op, "setup") for op in enrolments))
        grants = [
            journal.add(Op(f"grant-{m}", "accrual", m, POOR_POINTS if i < POOR_MEMBERS else POINTS))
            for i, m in enumerate(members)
        ]
        await asyncio.gather(*(client.attempt(op, "setup") for op in grants))
        refused = [op.key for op in enrolments + grants if op.outcome != "effect"]
        assert not refused, f"set-up not acknowledged: {refused} (journal {journal.path})"

        plan = Plan(journal, members, strangers, seed=SEEDS[victim])
        stop = asyncio.Event()
        workers = [asyncio.create_task(load_worker(client, plan, stop)) for _ in range(CLIENTS)]
        try:

            def acked_in_load() -> int:
                return sum(1 for op in journal.ops.values() if op.acked_in == "load")

            assert await _until(lambda: acked_in_load() >= ACKED_BEFORE_KILL, 20), (
                f"the load never got going:\n{service.output()}"
            )
            # Kill while a USSD confirmation (a hop that gifts) is on its way in.
            rich = set(members[POOR_MEMBERS:])
            client.trips_on = lambda op: op.msisdn in rich and op.recipient in rich
            tripwire = client.tripwire = asyncio.Event()

            async def moment() -> None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tripwire.wait(), TRIPWIRE_WAIT_S)
                await asyncio.sleep(KILL_OFFSET_S)
                journal.event(phase="load", note=f"kill -9 {victim}: {client.tripped_by} in")

            # A burst of new requests arrives as the process dies.
            burst: list[asyncio.Task[bool]] = []

            def fire_burst() -> None:
                for _ in range(BURST):
                    burst.append(asyncio.create_task(client.attempt(plan.next_op(), "load")))

            back_s, family_gone_s = await _kill_and_wait_back(
                service, victim, http, base_url, moment, fire_burst
            )
            await asyncio.gather(*burst)
            journal.event(phase="load", note=f"ready again after {back_s:.2f} s")
            after = acked_in_load()
            await _until(lambda: acked_in_load() >= after + 20, LOAD_AFTER_READY_S)
        finally:
            stop.set()
            await asyncio.gather(*workers)

        # Everything without a definite answer, again, with the same ids and keys.
        unacked = [op for op in journal.ops.values() if op.outcome is None]
        journal.event(phase="resend", note=f"{len(unacked)} ops to resend")
        unanswered = await resend_all(client, unacked, RESEND_DEADLINE_S)

        balances = {}
        for member in members:
            async with http.get(f"{base_url}/v1/subscribers/{member}") as resp:
                assert resp.status == 200, await resp.text()
                balances[member] = (await resp.json())["balance"]
    return Run(back_s, family_gone_s, members, balances, unanswered, client.tripped_by)


@dataclass
class Verdict:
    """The journal against the ledger."""

    lost: list[str]
    doubled: list[str]
    phantom: list[str]
    problems: list[str]


def _compare(journal: Journal, state: LedgerState, run: Run) -> Verdict:
    ops = journal.ops.values()
    lost: list[str] = [f"{op.key}: never answered" for op in run.unanswered]
    doubled: list[str] = []
    phantom: list[str] = []
    problems: list[str] = []

    gifts_by_points: dict[int, list[dict[str, Any]]] = {}
    for gift in state.gifts:
        gifts_by_points.setdefault(int(gift["points"]), []).append(gift)
    lots_by_key: dict[str, list[dict[str, Any]]] = {}
    for lot in state.accruals:
        lots_by_key.setdefault(lot["op_id"], []).append(lot)

    gift_points: set[int] = set()
    accrual_keys: set[str] = set()
    for op in ops:
        if op.kind in ("sms_gift", "ussd_gift"):
            gift_points.add(op.points)
            rows = gifts_by_points.get(op.points, [])
            mine = [g for g in rows if (g["sender"], g["recipient"]) == (op.msisdn, op.recipient)]
            if len(mine) != len(rows):
                phantom.append(f"{op.key}: gift rows of {op.points} points of others: {rows}")
            # The ledger's idempotency key names the SMS's id or the USSD session.
            keys = (
                (f"sms:{op.key}:gift",)
                if op.kind == "sms_gift"
                else tuple(f"ussd:native:{sid}:" for sid in op.session_ids)
            )
            if any(not g["op_id"].startswith(keys) for g in mine):
                problems.append(f"{op.key}: gift under another key than {keys}: {mine}")
            if op.outcome == "effect" and not mine:
                lost.append(f"{op.key}: acknowledged ({op.answer!r}) but no gift row")
            if len(mine) > 1:
                doubled.append(f"{op.key}: {len(mine)} gift rows {[g['op_id'] for g in mine]}")
            if op.outcome == "refused" and mine:
                phantom.append(f"{op.key}: refused ({op.answer!r}) but gift rows {mine}")
        elif op.kind == "accrual":
            accrual_keys.add(f"api:{op.key}")
            lots = lots_by_key.get(f"api:{op.key}", [])
            if op.outcome == "effect" and not lots:
                lost.append(f"{op.key}: acknowledged accrual without a lot")
            if len(lots) > 1:
                doubled.append(f"{op.key}: {len(lots)} lots")
            if op.outcome == "refused" and lots:
                phantom.append(f"{op.key}: refused accrual ({op.answer!r}) with lots {lots}")
            if any((lot["msisdn"], lot["amount"]) != (op.msisdn, op.points) for lot in lots):
                problems.append(f"{op.key}: lot differs from the request: {lots}")
    for points, rows in gifts_by_points.items():
        if points not in gift_points:
            phantom.append(f"gift rows of {points} points nobody asked for: {rows}")
    for key, lots in lots_by_key.items():
        if key not in accrual_keys:
            phantom.append(f"accrual {key} nobody asked for: {lots}")

    # Conservation: what was accrued is available, in escrow, spent or expired.
    accrued = sum(op.points for op in ops if op.kind == "accrual" and op.outcome == "effect")
    gifted = sum(op.points for op in ops if op.kind.endswith("_gift") and op.outcome == "effect")
    system = state.system
    held = (
        state.subscriber_balances
        + system.get("escrow", 0)
        + system.get("redemption", 0)
        + system.get("expired", 0)
    )
    if not accrued == -system.get("issuance", 0) == held:
        problems.append(
            f"accrued per journal {accrued}, issued {-system.get('issuance', 0)}, "
            f"available+escrow+spent+expired {held}"
        )
    if not gifted == system.get("escrow", 0) == state.pending_gifts:
        problems.append(
            f"gifted per journal {gifted}, escrow {system.get('escrow', 0)}, "
            f"pending gifts {state.pending_gifts}"
        )

    # Each member's balance as the journal tells it (nobody accepts a gift here).
    mine = [op for op in ops if op.outcome == "effect"]
    for member in run.members:
        expected = {
            "available": sum(o.points for o in mine if o.kind == "accrual" and o.msisdn == member)
            - sum(o.points for o in mine if o.kind.endswith("_gift") and o.msisdn == member),
            "pending_out": sum(
                o.points for o in mine if o.kind.endswith("_gift") and o.msisdn == member
            ),
            "pending_in": sum(
                o.points for o in mine if o.kind.endswith("_gift") and o.recipient == member
            ),
        }
        got = {k: run.balances[member][k] for k in expected}
        if got != expected:
            problems.append(f"{member}: balance {got}, the journal says {expected}")
    return Verdict(lost, doubled, phantom, problems)


def _outage_503(line: dict[str, Any]) -> bool:
    """/v1's documented answer while a backend is down: 503 with Retry-After.

    The README promises it ("while PostgreSQL or Redis is unreachable, /v1/*
    answers 503 with Retry-After") and ``tests/faults/test_fuzz.py`` holds the
    API to it; it tells the billing client to resend, which the journal does.
    Only during the outage (the load phase): once the service says it is ready,
    a 503 is a failure. Gateways never get a 5xx (they get polite texts), and
    nothing gets any other 5xx.
    """
    path = line["what"].split(" ")[1]
    return (
        line["status"] == 503
        and path.startswith("/v1/")
        and bool(line.get("retry_after"))
        and line["phase"] == "load"
    )


def _ledger_check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL"} and not k.startswith("USSD_")
    }
    return subprocess.run(
        [CLI, "ledger", "check", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("victim", ["serve", "postgres", "redis"])
def test_kill_9_mid_load_loses_nothing_and_doubles_nothing(victim: str, tmp_path: Path) -> None:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="ussd-jrnl-"))
    service = ServeProcess(root / "var", _free_port(), tmp_path / "serve.out")
    journal = Journal(tmp_path / f"journal-{victim}.jsonl")
    try:
        service.spawn()
        service.wait_ready(60)
        run = asyncio.run(_scenario(service, journal, victim))
        checked = _ledger_check(service.data_dir)
        state = asyncio.run(read_ledger(database_url(service.data_dir)))
        verdict = _compare(journal, state, run)

        load = [
            op for op in journal.ops.values() if op.kind in ("accrual", "sms_gift", "ussd_gift")
        ]
        load = [op for op in load if "setup" not in op.phases]
        kinds = Counter(op.kind for op in load)
        other_5xx = [e for e in journal.server_errors if not _outage_503(e)]
        in_flight = journal.ops.get(run.confirm_in_flight or "")
        outcomes = Counter(f"{op.kind}:{op.outcome}" for op in load)
        redials = sum(1 for op in load if len(op.session_ids) > 1)
        figures = {
            "killed": victim,
            "ops": len(load),
            "requests": sum(op.requests for op in journal.ops.values()),
            "acknowledged": sum(1 for op in load if op.acked_in == "load"),
            "resent": sum(1 for op in load if op.resent),
            "lost": len(verdict.lost),
            "doubled": len(verdict.doubled),
            "back_to_ready_s": round(run.back_to_ready_s, 2),
            "5xx": len(journal.server_errors),
            "5xx_outage_503": len(journal.server_errors) - len(other_5xx),
            "confirm_in_flight": run.confirm_in_flight,
            "in_flight_outcome": in_flight and (in_flight.outcome, in_flight.resent),
            "ussd_redials": redials,
            "ussd_events": dict(journal.tags),
            "by_kind": dict(kinds),
            "outcomes": dict(sorted(outcomes.items())),
            "statuses": dict(journal.statuses),
            "serve_family_gone_s": run.family_gone_s and round(run.family_gone_s, 2),
            "test_s": round(time.monotonic() - started, 1),
        }
        print(f"\nkill -9 {victim}: {figures}")
        summary = f"{figures}\njournal: {journal.path}"

        assert checked.returncode == 0, f"ledger check: {checked.stdout}{checked.stderr}\n{summary}"
        assert "clean" in checked.stdout, f"{checked.stdout}\n{summary}"
        assert not verdict.lost, f"lost: {verdict.lost[:10]}\n{summary}"
        assert not verdict.doubled, f"doubled: {verdict.doubled[:10]}\n{summary}"
        assert not verdict.phantom, f"effects nobody was told of: {verdict.phantom[:10]}\n{summary}"
        assert not verdict.problems, f"{verdict.problems[:10]}\n{summary}"
        assert not journal.unexpected, f"unexpected answers: {journal.unexpected[:5]}\n{summary}"
        assert not other_5xx, (
            f"5xx besides /v1's outage 503s: {other_5xx[:5]}\n"
            f"serve logged: {service.errors()[:5]}\n{summary}"
        )
        # The kill was felt (or the test proved nothing) and every kind was in the load.
        assert figures["resent"] > 0, summary
        assert set(kinds) == {"accrual", "sms_gift", "ussd_gift"}, summary
        assert any(op.outcome == "refused" for op in load), summary
    finally:
        journal.close_ops()
        journal.close()
        service.stop()
        shutil.rmtree(root, ignore_errors=True)
