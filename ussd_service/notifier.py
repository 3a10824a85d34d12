"""Delivery of the ledger's notifications (gift received, accepted, ...) as SMS.

The worker claims due outbox messages (``ledger.claim_due``: ``FOR UPDATE
SKIP LOCKED`` and a lease, so several workers never take the same row),
renders each message's ``sms.notifications`` template in the addressee's
language, and hands it to a transport:

* ``KannelTransport``: the operator's Kannel ``sendsms`` interface. ``GET``
  sends the query parameters ``username, password, from, to, text,
  charset=UTF-8`` (``coding=2``, UCS-2, for text outside GSM-7); ``POST`` is
  Kannel's own POST convention: the text as a ``text/plain; charset=UTF-8``
  body and ``X-Kannel-Username, -Password, -From, -To, -Coding`` headers (Kannel
  ignores a POST's query). Both ask for delivery reports (``dlr-mask`` and a
  ``dlr-url`` naming the outbox message and attempt, on ``USSD_PUBLIC_URL``)
  that ``/sms/dlr`` records. Any 2xx answer means Kannel took the message
  (``0: Accepted for delivery``, ``3: Queued for later delivery``); long
  texts are concatenated by Kannel (``concatenation``/``max-messages`` of the
  ``sendsms-user``).
* ``LogTransport`` (no gateway URL, development): the message is logged
  (numbers masked by the logging processor) and counts as delivered.

Accepted messages are marked ``sent``; a failed try is recorded with its
reason and retried with exponential backoff (the ledger's outbox settings),
and after ``outbox_max_attempts`` the message is parked as ``failed`` —
``GET /v1/outbox?status=failed`` lists them. How each sent message went out
(``via``: gateway or log) and its text are kept in Redis for a week
(``redis_keys.DELIVERY_PREFIX``) and shown by the same endpoint.

Time comes from ``clock`` and waiting from ``interval_s``: tests call
``run_once`` and move a ``ManualClock`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

import ledger
from menus import MenuRegistry, render_sms
from menus.errors import UnknownTemplateError
from menus.gsm import is_gsm7
from menus.text import TemplateError
from session_store import RedisClient
from ussd_service import reminders
from ussd_service.backends import connected
from ussd_service.channels.sms import DLR_MASK, dlr_url, secret_fits_url
from ussd_service.config import Settings
from ussd_service.deliveries import keep_delivery
from ussd_service.keys import MENUS, PG_POOL, REDIS, SETTINGS
from ussd_service.menu_files import load_menus
from ussd_service.operations import UNAVAILABLE_ERRORS
from ussd_service.sms_desk import local_variables

log = structlog.get_logger(__name__)

# Sends of one batch in flight at once.
SEND_CONCURRENCY = 8
# Longest part of a gateway's error answer kept as the failure reason.
MAX_GATEWAY_ANSWER = 200
# Kannel: ``coding=2`` sends the text as UCS-2 (Cyrillic); GSM-7 text goes as is.
KANNEL_UCS2 = "2"
KANNEL_CHARSET = "UTF-8"
PG_POOL_MAX = 4
# On shutdown the batch in flight gets its sends' timeout plus this to finish.
SHUTDOWN_MARGIN_S = 5.0
# While the ledger is unreachable the loop waits this long between tries at most.
MAX_ERROR_WAIT_S = 60.0


class DeliveryError(Exception):
    """The gateway did not take a message; ``reason`` is kept with it in the outbox."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One SMS to send: attempt ``attempt`` of outbox message ``outbox_id``."""

    outbox_id: int
    attempt: int
    to: str
    text: str


class Transport(Protocol):
    """Where notifications go. ``via`` names it in delivery records."""

    via: str

    async def send(self, message: Outgoing) -> None:
        """Deliver ``message`` (``to`` in E.164); raise DeliveryError when not accepted."""
        ...


class LogTransport:
    """No SMS gateway (development): log the message; it counts as delivered."""

    via = "log"

    async def send(self, message: Outgoing) -> None:
        log.info("sms_logged", outbox_id=message.outbox_id, msisdn=message.to, text=message.text)


@dataclass(frozen=True, slots=True)
class KannelRequest:
    """One ``sendsms`` call: the query (GET) or the headers and body (POST)."""

    method: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None


class KannelTransport:
    """The operator's SMS gateway: Kannel's ``sendsms`` interface (GET or Kannel's POST).

    ``dlr_base`` (the service's address as Kannel calls it) turns delivery
    reports on; ``dlr_secret`` (the gateway secret) rides in their URL.
    """

    via = "gateway"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        method: str = "POST",
        timeout_s: float = 10.0,
        dlr_base: str | None = None,
        dlr_secret: str | None = None,
    ) -> None:
        self.session = session
        self.url = url
        self.sender = sender
        self.username = username
        self.password = password
        self.method = method.upper()
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.dlr_base = dlr_base
        self.dlr_secret = dlr_secret

    def fields(self, message: Outgoing) -> dict[str, str]:
        """What Kannel is told, by ``sendsms`` query parameter name."""
        fields = {"from": self.sender, "to": message.to, "text": message.text}
        fields["charset"] = KANNEL_CHARSET
        if not is_gsm7(message.text):
            fields["coding"] = KANNEL_UCS2
        if self.username is not None:
            fields["username"] = self.username
        if self.password is not None:
            fields["password"] = self.password
        if self.dlr_base is not None:
            fields["dlr-mask"] = str(DLR_MASK)
            fields["dlr-url"] = dlr_url(
                self.dlr_base, self.dlr_secret, message.outbox_id, message.attempt
            )
        return fields

    def request(self, message: Outgoing) -> KannelRequest:
        """The ``sendsms`` call for ``message`` in this transport's method."""
        fields = self.fields(message)
        if self.method == "GET":
            return KannelRequest("GET", fields, {}, None)
        text = fields.pop("text")
        charset = fields.pop("charset")
        headers = {"Content-Type": f"text/plain; charset={charset}"}
        for name, value in fields.items():
            headers["X-Kannel-" + _KANNEL_HEADERS[name]] = value
        return KannelRequest("POST", {}, headers, text.encode(_PYTHON_CHARSET[charset]))

    async def send(self, message: Outgoing) -> None:
        call = self.request(message)
        try:
            async with self.session.request(
                call.method,
                self.url,
                params=call.params or None,
                data=call.body,
                headers=call.headers or None,
                timeout=self.timeout,
            ) as resp:
                answer = await resp.text(errors="replace")
                if not 200 <= resp.status < 300:
                    short = " ".join(answer.split())[:MAX_GATEWAY_ANSWER]
                    raise DeliveryError(f"gateway answered {resp.status}: {short}".rstrip(": "))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"gateway unreachable: {type(exc).__name__}") from exc


# Kannel's POST convention: each ``sendsms`` parameter as an ``X-Kannel-*`` header.
_KANNEL_HEADERS = {
    "from": "From",
    "to": "To",
    "coding": "Coding",
    "username": "Username",
    "password": "Password",
    "dlr-mask": "DLR-Mask",
    "dlr-url": "DLR-URL",
}
_PYTHON_CHARSET = {KANNEL_CHARSET: "utf-8"}


def delivery_report_base(settings: Settings) -> str | None:
    """Where Kannel sends delivery reports (``USSD_PUBLIC_URL``); None: reports off."""
    if settings.public_url is None:
        log.info("delivery_reports_off", reason="USSD_PUBLIC_URL is not set")
        return None
    secret = settings.gateway_secret
    if secret is not None and not secret_fits_url(secret):
        log.warning(
            "delivery_reports_off",
            reason="USSD_GATEWAY_SECRET must be letters, digits and -._~ to ride in a dlr-url",
        )
        return None
    return settings.public_url


@contextlib.asynccontextmanager
async def transport_for(settings: Settings) -> AsyncIterator[Transport]:
    """The transport the settings ask for; a gateway's HTTP session closes on exit."""
    if settings.sms_gateway_url is None:
        yield LogTransport()
        return
    password = settings.sms_gateway_password
    async with aiohttp.ClientSession() as session:
        yield KannelTransport(
            session,
            settings.sms_gateway_url,
            sender=settings.sms_sender,
            username=settings.sms_gateway_username,
            password=password.get_secret_value() if password is not None else None,
            method=settings.sms_gateway_method,
            timeout_s=settings.sms_gateway_timeout,
            dlr_base=delivery_report_base(settings),
            dlr_secret=settings.gateway_secret,
        )


@dataclass
class DeliveryReport:
    """What one ``run_once`` did, by message id."""

    claimed: int = 0
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)


def render_notification(registry: MenuRegistry, message: ledger.OutboxMessage, tz: str) -> str:
    """The text of ``message`` in its addressee's language (raises UnknownTemplateError)."""
    payload = message.payload
    language = str(payload.get("language") or "")
    return render_sms(registry.current, message.event, language, local_variables(payload, tz))


class Notifier:
    """Claims due outbox messages, renders them and delivers them through ``transport``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        menus: MenuRegistry,
        transport: Transport,
        *,
        redis: RedisClient | None = None,
        batch: int = 50,
        concurrency: int = SEND_CONCURRENCY,
        clock: ledger.Clock = ledger.SYSTEM_CLOCK,
        settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
    ) -> None:
        self.pool = pool
        self.menus = menus
        self.transport = transport
        self.redis = redis
        self.batch = batch
        self.clock = clock
        self.settings = settings
        self._slots = asyncio.Semaphore(concurrency)
        # Delivered but not yet marked sent (the database failed in between):
        # marked first thing next time, never sent again by this process.
        self._unmarked: set[int] = set()

    async def run_once(self) -> DeliveryReport:
        """Deliver one batch of due messages; raises when the ledger is unreachable."""
        await self._mark_unmarked()
        messages = await ledger.claim_due(
            self.pool, limit=self.batch, clock=self.clock, settings=self.settings
        )
        report = DeliveryReport(claimed=len(messages))
        outcomes = await asyncio.gather(
            *(self._deliver(message) for message in messages), return_exceptions=True
        )
        for message, outcome in zip(messages, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # A database error while reporting: the lease makes it due again.
                log.warning(
                    "notification_unreported", outbox_id=message.id, error=type(outcome).__name__
                )
                continue
            getattr(report, outcome).append(message.id)
        if messages:
            log.info(
                "notifications_delivered",
                claimed=report.claimed,
                sent=len(report.sent),
                retrying=len(report.retrying),
                parked=len(report.parked),
                via=self.transport.via,
            )
        return report

    async def run(self, interval_s: float, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set (or the task is cancelled).

        A full batch is followed at once by the next; otherwise the loop waits
        ``interval_s``. Errors are logged and the loop goes on, waiting longer
        while they last.
        """
        stop = stop or asyncio.Event()
        failures = 0
        while not stop.is_set():
            wait = interval_s
            try:
                report = await self.run_once()
                failures = 0
                if report.claimed >= self.batch:
                    continue
            except UNAVAILABLE_ERRORS as exc:
                failures += 1
                wait = min(interval_s * 2**failures, MAX_ERROR_WAIT_S)
                log.warning("notifier_unavailable", error=type(exc).__name__, retry_in_s=wait)
            except Exception:
                # A bug must not stop every notification of the service for good.
                failures += 1
                wait = min(interval_s * 2**failures, MAX_ERROR_WAIT_S)
                log.exception("notifier_failed", retry_in_s=wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _deliver(self, message: ledger.OutboxMessage) -> str:
        """Send one message and report it; returns the DeliveryReport field it counts in."""
        if message.id in self._unmarked:
            await self._mark_sent(message.id)
            return "sent"
        try:
            text = render_notification(self.menus, message, self.settings.timezone)
        except (UnknownTemplateError, TemplateError, LookupError, TypeError, ValueError) as exc:
            # Retrying cannot help until the menu file changes: park it with the reason.
            reason = f"cannot render {message.event}: {type(exc).__name__} {exc}"
            log.exception(
                "notification_unrenderable", outbox_id=message.id, notification=message.event
            )
            await ledger.record_failure(
                self.pool, message.id, reason, permanent=True, clock=self.clock
            )
            return "parked"
        async with self._slots:
            try:
                await self.transport.send(
                    Outgoing(message.id, message.attempts, message.msisdn, text)
                )
            except DeliveryError as exc:
                status = await ledger.record_failure(
                    self.pool, message.id, exc.reason, clock=self.clock, settings=self.settings
                )
                log.warning(
                    "notification_failed",
                    outbox_id=message.id,
                    notification=message.event,
                    attempts=message.attempts,
                    reason=exc.reason,
                    status=status,
                )
                return "parked" if status == "failed" else "retrying"
        self._unmarked.add(message.id)
        await self._keep_delivery(message.id, text)
        await self._mark_sent(message.id)
        return "sent"

    async def _mark_sent(self, message_id: int) -> None:
        await ledger.mark_sent(self.pool, message_id, clock=self.clock)
        self._unmarked.discard(message_id)

    async def _mark_unmarked(self) -> None:
        for message_id in sorted(self._unmarked):
            await self._mark_sent(message_id)

    async def _keep_delivery(self, message_id: int, text: str) -> None:
        if self.redis is None:
            return
        try:
            await keep_delivery(
                self.redis, message_id, via=self.transport.via, text=text, at=self.clock.now()
            )
        except (RedisError, RedisClusterException, OSError) as exc:
            # The record is informational; the delivery itself stands.
            log.warning("delivery_record_unavailable", error=type(exc).__name__)


# -- inside the service, and alone --------------------------------------------------


async def notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry: the delivery worker runs while the app does.

    Append it after the Redis and PostgreSQL contexts (it uses both pools).
    """
    settings = app[SETTINGS]
    stop = asyncio.Event()
    async with transport_for(settings) as transport:
        worker_ = Notifier(
            app[PG_POOL],
            app[MENUS],
            transport,
            redis=app[REDIS],
            batch=settings.notifier_batch,
            settings=settings.ledger_settings(),
        )
        task = asyncio.create_task(worker_.run(settings.notifier_interval, stop), name="notifier")
        log.info("notifier_started", via=transport.via)
        yield
        # Let the batch in flight finish: a message the gateway accepted but
        # that was never marked sent would go out again after its lease.
        stop.set()
        try:
            await asyncio.wait_for(task, settings.sms_gateway_timeout + SHUTDOWN_MARGIN_S)
        except TimeoutError:
            log.warning("notifier_stopped_mid_batch")
        except Exception:
            log.exception("notifier_failed")


async def run_worker(settings: Settings, *, once: bool = False) -> DeliveryReport | None:
    """The worker with pools of its own (``ussd-service worker``); until SIGINT/SIGTERM.

    It runs the expiry reminders too (``ussd_service.reminders``): ``once``
    makes one reminder pass before delivering what is due.
    """
    registry = load_menus(settings.menu_file)
    async with (
        connected(settings, pg_max_size=PG_POOL_MAX) as backends,
        transport_for(settings) as transport,
    ):
        notifier = Notifier(
            backends.pool,
            registry,
            transport,
            redis=backends.redis,
            batch=settings.notifier_batch,
            settings=settings.ledger_settings(),
        )
        if once:
            if settings.reminder_days:
                await reminders.remind_once(backends.pool, settings)
            return await notifier.run_once()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker_started", via=transport.via)
        reminding = asyncio.create_task(
            reminders.run_reminders(backends.pool, settings, stop=stop), name="reminders"
        )
        try:
            await notifier.run(settings.notifier_interval, stop)
        finally:
            stop.set()
            await reminding
        return None
