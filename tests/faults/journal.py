# The screens and replies the client reads are Russian (the default language).
# ruff: noqa: RUF001
"""A journaled load against a real `ussd-service serve`: every request and every answer kept.

The client plays the gateways and the operator's billing: SMS gifts through
the SMS dialect (one message ``id`` each), USSD gifts through the native
dialect (hop ids, begin -> 4 -> recipient -> points -> 1) and accruals through
``POST /v1/accruals`` (one ``idempotency_key`` each). Each logical request is
an ``Op``; each HTTP request sent for it is one line of the journal (JSON
lines), with the answer and what the client made of it:

* ``effect``: the service said it was done (accrual 201, "отправлен");
* ``refused``: the service said it was not done (not enough points, ...);
* ``progress``: a USSD screen on the way to the confirmation;
* ``retry``: no definite answer (no answer at all, a 5xx, "unavailable",
  "session expired"); the op is resent later with the same ids and keys.

Gift amounts are unique per op, so the ledger's gift rows can be matched to
the ops that asked for them. ``ServeProcess`` runs `serve` on a fixed port and
data directory and remembers every process it started, so a test can kill
them all, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from embedded_servers import EmbeddedServers
from ussd_service.channels import dialect
from ussd_service.channels.dialect import GatewayRequest, GatewaySession

CLI = str(Path(sys.executable).parent / "ussd-service")
USSD_CODE = "*111*455#"
SMS_NUMBER = "4555"
# Longer than any of the service's own deadlines (USSD hop 4 s, SMS and API 5 s).
HTTP_TIMEOUT_S = 10.0

# What the subscriber reads (menu_definitions.yaml, Russian: the default language).
SMS_SENT = "отправлен"
# Beginnings of the refusals (they state the balance or the limits that apply).
SMS_REFUSALS = (
    "Недостаточно баллов: у вас ",
    "Получатель не в программе.",
    "Неверный номер получателя.",
    "Нельзя дарить себе.",
    "Подарок — от ",
    "Сегодня можно подарить ещё ",
    "Дневной лимит подарков исчерпан.",
)
SMS_UNAVAILABLE = "Сервис недоступен"
USSD_SENT = "Подарок отправлен"
# Beginnings of the refusals: before the confirmation (the balance, the day's
# allowance, who cannot receive), or after it when something changed meanwhile.
USSD_REFUSALS = (
    "У вас ",
    "Сегодня можно подарить ещё ",
    "Для подарка нужно от ",
    "Этот номер не в программе бонусов.",
    "Себе дарить нельзя.",
    "Недостаточно баллов для подарка",
    "Получатель не в программе бонусов.",
    "Этот номер не принимает подарки.",
    "Нельзя дарить баллы себе.",
    "Подарок — от ",
    "Дневной лимит подарков исчерпан.",
)
USSD_UNAVAILABLE = "Сервис временно недоступен"
USSD_EXPIRED = "Сессия истекла"
USSD_RESUME = "Продолжить с места"
USSD_MAIN = "4. Подарить баллы"
USSD_RECIPIENT = "Номер получателя"
USSD_AMOUNT = "Сколько баллов подарить"
USSD_CONFIRM = "Подарить "
# Hops one attempt may send before it gives the turn back (a loop is a bug).
MAX_HOPS_PER_ATTEMPT = 12
# A hop answered "unavailable" this often after the service is ready again: redial.
UNAVAILABLE_BEFORE_REDIAL = 3


def local_form(msisdn: str) -> str:
    """The number as a Russian subscriber types it (8 916 ...)."""
    return "8" + msisdn[2:]


# -- the journal ---------------------------------------------------------------------------


@dataclass
class Op:
    """One logical request and everything the client did for it."""

    key: str  # accrual idempotency key, SMS message id, or the USSD op's label
    kind: str  # enroll | accrual | sms_gift | ussd_gift
    msisdn: str  # the member credited or the gift's sender
    points: int = 0
    recipient: str | None = None
    outcome: str | None = None  # effect | refused | unexpected; None while unanswered
    answer: str = ""
    acked_in: str | None = None  # the phase of the definite answer
    phases: set[str] = field(default_factory=set)
    requests: int = 0
    # USSD only: the gateway's side of the current session, the request it
    # waits an answer for (resent as is), the screen it last read.
    session: GatewaySession | None = None
    session_ids: list[str] = field(default_factory=list)
    pending: GatewayRequest | None = None
    pending_input: str | None = None
    screen: str | None = None
    confirm_sent: bool = False
    unavailable_streak: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def resent(self) -> bool:
        return "resend" in self.phases


class Journal:
    """Every request and answer, in memory and as JSON lines in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self.ops: dict[str, Op] = {}
        self.statuses: Counter[str] = Counter()
        self.server_errors: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self.tags: Counter[str] = Counter()  # redials, resumes, sessions gone, ...
        self._file = path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()

    def add(self, op: Op) -> Op:
        assert op.key not in self.ops, op.key
        self.ops[op.key] = op
        return op

    def event(self, **fields: Any) -> None:
        fields = {"t": round(time.monotonic() - self.started, 3), **fields}
        self._file.write(json.dumps(fields, ensure_ascii=False) + "\n")
        self._file.flush()

    def record(
        self,
        op: Op,
        phase: str,
        what: str,
        status: int | None,
        answer: str,
        verdict: str,
        *,
        retry_after: str | None = None,
    ) -> None:
        op.requests += 1
        op.phases.add(phase)
        self.statuses[str(status) if status is not None else "no answer"] += 1
        line = {
            "phase": phase,
            "op": op.key,
            "kind": op.kind,
            "what": what,
            "status": status,
            "answer": answer[:200],
            "verdict": verdict,
        }
        if status is not None and status >= 500:
            line["retry_after"] = retry_after
            self.server_errors.append(line)
        if verdict == "unexpected":
            self.unexpected.append(line)
        self.event(**line)
        if verdict in ("effect", "refused") or (verdict == "unexpected" and op.kind != "ussd_gift"):
            # An unexpected answer ends the op (the test fails on it); a USSD op redials.
            op.outcome = verdict
            op.answer = answer
            op.acked_in = phase

    def note(self, op: Op, phase: str, what: str, tag: str | None = None) -> None:
        if tag is not None:
            self.tags[tag] += 1
        op.notes.append(f"{phase}: {what}")
        self.event(phase=phase, op=op.key, kind=op.kind, note=what)

    def close_ops(self) -> None:
        """One final line per op: how it ended."""
        for op in self.ops.values():
            self.event(
                final=op.key,
                kind=op.kind,
                msisdn=op.msisdn,
                recipient=op.recipient,
                points=op.points,
                outcome=op.outcome,
                acked_in=op.acked_in,
                requests=op.requests,
                sessions=op.session_ids,
                notes=op.notes,
            )


# -- the client: gateways and billing --------------------------------------------------------


class NoAnswerError(Exception):
    """The request got no HTTP answer (refused, reset, timed out)."""


class Client:
    """Sends ops to the service and journals every request."""

    def __init__(self, base_url: str, journal: Journal, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.journal = journal
        self.http = http
        # Set when a USSD confirmation (the hop that gifts) is about to be sent.
        self.tripwire: asyncio.Event | None = None
        self.trips_on: Callable[[Op], bool] = lambda _op: True
        self.tripped_by: str | None = None

    async def _send(self, req: GatewayRequest) -> tuple[int, str, str | None]:
        """Status, body and Retry-After of the answer (NoAnswerError when there is none)."""
        headers = dict(req.headers)
        if req.content_type:
            headers["Content-Type"] = req.content_type
        try:
            async with self.http.request(
                req.method,
                self.base_url + req.path,
                params=dict(req.query) or None,
                data=req.body or None,
                headers=headers,
            ) as resp:
                return resp.status, await resp.text(), resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NoAnswerError(f"{type(exc).__name__}: {exc}") from exc

    async def attempt(self, op: Op, phase: str) -> bool:
        """Send ``op`` (its pending request first); True once it has a definite answer."""
        if op.outcome is not None:
            return True
        if op.kind == "accrual":
            await self._accrual(op, phase)
        elif op.kind == "enroll":
            await self._enroll(op, phase)
        elif op.kind == "sms_gift":
            await self._sms_gift(op, phase)
        else:
            await self._ussd_gift(op, phase)
        return op.outcome is not None

    async def _api(self, op: Op, phase: str, req: GatewayRequest, ok: tuple[int, ...]) -> None:
        what = f"{req.method} {req.path}"
        try:
            status, body, retry_after = await self._send(req)
        except NoAnswerError as exc:
            self.journal.record(op, phase, what, None, str(exc), "retry")
            return
        if status in ok:
            verdict = "effect"
        elif status >= 500:
            verdict = "retry"
        else:
            verdict = "unexpected"  # every request the load makes is valid
        self.journal.record(op, phase, what, status, body, verdict, retry_after=retry_after)

    async def _accrual(self, op: Op, phase: str) -> None:
        body = {
            "msisdn": op.msisdn,
            "points": op.points,
            "reason": "journaled load",
            "idempotency_key": op.key,
        }
        req = GatewayRequest("POST", "/v1/accruals", json.dumps(body).encode(), "application/json")
        await self._api(op, phase, req, (200, 201))

    async def _enroll(self, op: Op, phase: str) -> None:
        req = GatewayRequest(
            "POST",
            f"/v1/subscribers/{op.msisdn}/enrollment",
            headers={"Idempotency-Key": op.key},
        )
        await self._api(op, phase, req, (200,))

    async def _sms_gift(self, op: Op, phase: str) -> None:
        assert op.recipient is not None
        client = dialect("sms").sms_client
        assert client is not None
        phone = client(op.msisdn, SMS_NUMBER)
        req = phone.message(f"DAR {local_form(op.recipient)} {op.points}", op.key)
        what = f"SMS id={op.key}"
        try:
            status, body, retry_after = await self._send(req)
        except NoAnswerError as exc:
            self.journal.record(op, phase, what, None, str(exc), "retry")
            return
        text = phone.read(status, body).text
        if status != 200 or SMS_UNAVAILABLE in text:
            verdict = "retry"
        elif SMS_SENT in text and f" {op.points} " in text:
            verdict = "effect"
        elif text.startswith(SMS_REFUSALS):
            verdict = "refused"
        else:
            verdict = "unexpected"
        self.journal.record(op, phase, what, status, text, verdict, retry_after=retry_after)

    # -- USSD: a small state machine over the screens --------------------------------------

    def _dial(self, op: Op, phase: str) -> None:
        native = dialect("native").session
        assert native is not None
        session_id = f"jrnl-{uuid.uuid4().hex}"
        if op.session_ids:
            self.journal.note(op, phase, f"redial: new session {session_id}", "redial")
        op.session_ids.append(session_id)
        op.session = native(op.msisdn, session_id, USSD_CODE)
        op.pending = op.session.begin()
        op.pending_input = None
        op.screen = None

    def _next_request(self, op: Op, phase: str) -> GatewayRequest | None:
        """The subscriber's answer to ``op.screen`` (None: a screen this flow never shows)."""
        assert op.session is not None
        screen = op.screen or ""
        keys: str
        if USSD_RESUME in screen:
            # Our own dropped session when this op was dialled before; otherwise someone
            # else's, which this flow must not finish.
            keys = "1" if len(op.session_ids) > 1 else "2"
            self.journal.note(op, phase, f"resume offered: pressed {keys}", f"resume_{keys}")
        elif USSD_MAIN in screen:
            if op.confirm_sent:
                # The confirmation may have run under the lost session's keys: a fresh
                # flow asks the ledger a new question. The checks will tell.
                self.journal.note(
                    op, phase, "back at the main menu after a confirmation", "fresh_after_confirm"
                )
            keys = "4"
        elif USSD_RECIPIENT in screen:
            assert op.recipient is not None
            keys = local_form(op.recipient)
        elif USSD_AMOUNT in screen:
            keys = str(op.points)
        elif screen.startswith(USSD_CONFIRM) and f"{USSD_CONFIRM}{op.points} балл" in screen:
            keys = "1"
            op.confirm_sent = True
        else:
            return None
        op.pending_input = keys
        return op.session.answer(keys)

    async def _ussd_gift(self, op: Op, phase: str) -> None:
        if op.session is None:
            self._dial(op, phase)
        for _ in range(MAX_HOPS_PER_ATTEMPT):
            assert op.session is not None
            if op.pending is None:
                op.pending = self._next_request(op, phase)
                if op.pending is None:
                    self.journal.record(op, phase, "USSD", 200, op.screen or "", "unexpected")
                    self._dial(op, phase)
                    return
            req = op.pending
            hop = json.loads(req.body)
            what = f"USSD {hop['session_id']} {hop['hop_id']} {hop.get('input', hop['event'])}"
            confirming = op.pending_input == "1" and (op.screen or "").startswith(USSD_CONFIRM)
            if confirming and self.tripwire is not None and self.trips_on(op):
                # The hop that gifts is about to go out: the moment to kill something.
                self.tripwire.set()
                self.tripwire = None
                self.tripped_by = op.key
            try:
                status, body, retry_after = await self._send(req)
            except NoAnswerError as exc:
                self.journal.record(op, phase, what, None, str(exc), "retry")
                return
            text = op.session.read(status, body).text
            if status != 200:
                self.journal.record(op, phase, what, status, text, "retry", retry_after=retry_after)
                return
            if USSD_SENT in text:
                self.journal.record(op, phase, what, status, text, "effect")
                return
            if text.startswith(USSD_REFUSALS):
                self.journal.record(op, phase, what, status, text, "refused")
                return
            if USSD_EXPIRED in text:
                self.journal.record(op, phase, what, status, text, "retry")
                self.journal.note(op, phase, "session gone", "session_gone")
                self._dial(op, phase)
                return
            if USSD_UNAVAILABLE in text:
                self.journal.record(op, phase, what, status, text, "retry")
                if phase == "resend":
                    op.unavailable_streak += 1
                if op.unavailable_streak >= UNAVAILABLE_BEFORE_REDIAL:
                    # The service is ready again, yet this hop keeps its answer: a final
                    # screen kept for it, or a stuck claim. A redial offers to resume a
                    # dropped confirmation under the dropped session's keys.
                    op.unavailable_streak = 0
                    self._dial(op, phase)
                return  # the same hop (same session id and hop id) again later
            self.journal.record(op, phase, what, status, text, "progress")
            op.unavailable_streak = 0
            op.screen = text
            op.pending = None
        self.journal.note(op, phase, "too many hops in one attempt", "too_many_hops")


# -- the plan: who sends what ------------------------------------------------------------------


class Plan:
    """Makes the load's ops: unique gift amounts, one USSD op per sender at a time."""

    def __init__(
        self,
        journal: Journal,
        members: list[str],
        strangers: list[str],
        seed: int,
    ) -> None:
        self.journal = journal
        self.members = members
        self.strangers = strangers
        self.rng = random.Random(seed)
        self.amounts = itertools.count(10)
        self.serial = itertools.count(1)
        self.ussd_busy: set[str] = set()

    def _recipient(self, sender: str) -> str:
        if self.rng.random() < 0.1:
            return self.rng.choice(self.strangers)
        return self.rng.choice([m for m in self.members if m != sender])

    def next_op(self) -> Op:
        n = next(self.serial)
        roll = self.rng.random()
        free = [m for m in self.members if m not in self.ussd_busy]
        if roll < 0.3:
            member = self.rng.choice(self.members)
            op = Op(f"acc-{n}-{uuid.uuid4().hex[:8]}", "accrual", member, self.rng.randint(1, 400))
        elif roll < 0.6 and free:
            sender = self.rng.choice(free)
            self.ussd_busy.add(sender)
            op = Op(f"ussd-{n}", "ussd_gift", sender, next(self.amounts), self._recipient(sender))
        else:
            sender = self.rng.choice(self.members)
            op = Op(
                f"sms-{n}-{uuid.uuid4().hex[:8]}",
                "sms_gift",
                sender,
                next(self.amounts),
                self._recipient(sender),
            )
        return self.journal.add(op)

    def done(self, op: Op) -> None:
        """A USSD op answered for good frees its sender for another one."""
        if op.kind == "ussd_gift" and op.outcome is not None:
            self.ussd_busy.discard(op.msisdn)


async def load_worker(client: Client, plan: Plan, stop: asyncio.Event) -> None:
    """New ops, each sent once, until ``stop``; pauses a moment after no answer."""
    while not stop.is_set():
        op = plan.next_op()
        before = op.requests
        await client.attempt(op, "load")
        plan.done(op)
        if op.outcome is None and op.requests == before + 1:
            # A gateway backs off a little when the service does not answer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


async def resend_all(
    client: Client, ops: list[Op], deadline_s: float, concurrency: int = 4
) -> list[Op]:
    """Resend every op until it has a definite answer; those still without one."""
    ends_at = time.monotonic() + deadline_s
    queue: asyncio.Queue[Op] = asyncio.Queue()
    for op in ops:
        queue.put_nowait(op)

    async def worker() -> None:
        while not queue.empty():
            op = queue.get_nowait()
            delay = 0.05
            while time.monotonic() < ends_at and not await client.attempt(op, "resend"):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [op for op in ops if op.outcome is None]


# -- serve as a process ------------------------------------------------------------------------


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ServeProcess:
    """`ussd-service serve` on ``port`` over ``data_dir``; every process it ran is remembered."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, float] = {}  # pid -> create time, for a safe final kill

    def spawn(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"REDIS_URL", "DATABASE_URL"} and not k.startswith("USSD_")
        }
        env["USSD_LOG_FORMAT"] = "json"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [CLI, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._remember([psutil.Process(self.proc.pid)])

    def wait_ready(self, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.output()}")
            if ready(self.port):
                self.family()
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"serve not ready in {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def errors(self) -> list[str]:
        """Route and last line of each unhandled error serve logged (its 500s)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if '"unhandled_error"' in line:
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    last = str(entry.get("exception", "")).strip().splitlines()[-1:]
                    found.append(f"{entry.get('route')}: {' '.join(last)}")
        return found

    def _remember(self, procs: list[psutil.Process]) -> None:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(proc.pid, proc.create_time())

    def family(self) -> list[int]:
        """Pids of serve and all its descendants now (remembered for the final kill)."""
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self._remember(procs)
        return [p.pid for p in procs]

    def server(self, name: str) -> psutil.Process:
        """The embedded server ``name`` (a direct child of serve)."""
        assert self.proc is not None
        self.family()
        (found,) = [p for p in psutil.Process(self.proc.pid).children() if p.name() == name]
        return found

    def kill(self) -> None:
        """SIGKILL serve (call ``family`` before: its children are orphans afterwards)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait; then SIGKILL anything this object ever started that lives on."""
        if self.proc is not None and self.proc.poll() is None:
            self.family()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
                    proc.wait(max(0.1, deadline - time.monotonic()))


# -- the ledger, read directly -----------------------------------------------------------------


def database_url(data_dir: Path) -> str:
    """The running serve's PostgreSQL (the URL carries the data directory's secret)."""
    joined = EmbeddedServers(data_dir)
    url = joined.start().database_url
    if joined.started_any:
        joined.stop()
        raise AssertionError("serve's servers were not running: joining started new ones")
    return url


@dataclass
class LedgerState:
    """What the ledger holds, for the journal's checks."""

    gifts: list[dict[str, Any]]
    accruals: list[dict[str, Any]]
    subscriber_balances: int
    system: dict[str, int]
    pending_gifts: int


async def read_ledger(url: str) -> LedgerState:
    conn = await asyncpg.connect(url)
    try:
        gifts = await conn.fetch(
            "SELECT s.msisdn AS sender, r.msisdn AS recipient, g.points, g.status, o.op_id "
            "FROM gifts g JOIN subscribers s ON s.id = g.sender_id "
            "JOIN subscribers r ON r.id = g.recipient_id "
            "JOIN operations o ON o.id = g.operation_id"
        )
        accruals = await conn.fetch(
            "SELECT o.op_id, s.msisdn, l.amount FROM point_lots l "
            "JOIN operations o ON o.id = l.operation_id "
            "JOIN accounts a ON a.id = l.account_id "
            "JOIN subscribers s ON s.id = a.subscriber_id WHERE o.kind = 'accrue'"
        )
        balances = await conn.fetchval(
            "SELECT coalesce(sum(balance), 0)::bigint FROM accounts WHERE kind = 'subscriber'"
        )
        system = await conn.fetch(
            "SELECT a.kind, coalesce(sum(p.amount), 0)::bigint AS total FROM accounts a "
            "LEFT JOIN postings p ON p.account_id = a.id WHERE a.kind <> 'subscriber' "
            "GROUP BY a.kind"
        )
        pending = await conn.fetchval(
            "SELECT coalesce(sum(points), 0)::bigint FROM gifts WHERE status = 'pending'"
        )
    finally:
        await conn.close()
    return LedgerState(
        gifts=[dict(r) for r in gifts],
        accruals=[dict(r) for r in accruals],
        subscriber_balances=int(balances),
        system={r["kind"]: int(r["total"]) for r in system},
        pending_gifts=int(pending),
    )
