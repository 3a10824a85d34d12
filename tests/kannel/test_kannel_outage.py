
"""Kannel stopped and started again: the outbox keeps the notification and delivers it.

The worker is driven here (``run_once`` on a manual clock) instead of running
inside the service, so each try is one step of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from kannel_harness import SECRET, SENDSMS_USER, KannelGateway, Phones
from service_harness import Service, member, numbers, outbox_to, until

import ledger
from ussd_service.menu_files import load_menus
from ussd_service.notifier import KannelTransport, Notifier

SERVICE_WORKER = False


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def notifier_for(
    service: Service,
    kannel: KannelGateway,
    http: aiohttp.ClientSession,
    clock: ledger.Clock,
    *,
    password: str | None = None,
) -> Notifier:
    transport = KannelTransport(
        http,
        kannel.sendsms_url,
        sender="4555",
        username=SENDSMS_USER,
        password=password or kannel.sendsms_password,
        timeout_s=5,
        dlr_base=service.url,
        dlr_secret=SECRET,
    )
    registry = load_menus(service.settings.menu_file)
    return Notifier(service.pool, registry, transport, clock=clock)


async def test_kannel_refuses_a_wrong_password_and_a_post_without_its_convention(
    service: Service, phones: Phones, kannel: KannelGateway, http: aiohttp.ClientSession
) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=200)
    await member(service.pool, recipient)
    await phones.ask(sender, f"DAR {typed} 20")
    clock = ledger.ManualClock(datetime.now(UTC) + timedelta(minutes=1))

    report = await notifier_for(service, kannel, http, clock, password="wrong").run_once()

    [message] = await outbox_to(service.pool, recipient)
    assert report.retrying == [message.id]
    assert message.last_error == "gateway answered 403: Authorization failed for sendsms"
    # What the notifier used to send: a POST with its parameters in the query.
    query = {"username": SENDSMS_USER, "password": kannel.sendsms_password}
    async with http.post(kannel.sendsms_url, params={**query, "to": recipient, "text": "x"}) as r:
        assert (r.status, (await r.text()).strip()) == (403, "Authorization failed for sendsms")
    clock.advance(timedelta(hours=1))
    assert (await notifier_for(service, kannel, http, clock).run_once()).sent == [message.id]
    await phones.expect(recipient)


async def test_kannel_stopped_then_back_the_outbox_retries_and_delivers(
    service: Service, phones: Phones, kannel: KannelGateway, http: aiohttp.ClientSession
) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=300)
    await member(service.pool, recipient)
    await phones.ask(sender, f"ДАР {typed} 30", ucs2=True)
    clock = ledger.ManualClock(datetime.now(UTC) + timedelta(minutes=1))
    notifier = notifier_for(service, kannel, http, clock)

    kannel.stop()
    await phones.stop()
    for attempt in (1, 2):
        report = await notifier.run_once()
        [message] = await outbox_to(service.pool, recipient)
        assert report.retrying == [message.id]
        assert (message.status, message.attempts) == ("pending", attempt)
        assert message.last_error is not None
        assert message.last_error.startswith("gateway unreachable: ")
        clock.advance(timedelta(hours=1))

    # Kannel is back but no SMSC is connected yet: it queues the message (3: Queued).
    kannel.start()
    assert (await notifier.run_once()).sent == [message.id]
    assert phones.to(recipient) == []
    await phones.start()
    kannel.wait_smsc_online()
    [notice] = await phones.expect(recipient, within=20)
    assert notice.text.startswith("Вам 30 баллов от +7 916 ")
    assert notice.coding == "ucs-2"

    async def delivered() -> bool:
        [message] = await outbox_to(service.pool, recipient)
        return message.dlr is not None and message.dlr.status == "delivered"

    await until(delivered, within=15)
    [message] = await outbox_to(service.pool, recipient)
    assert (message.status, message.attempts) == ("sent", 3)
    assert message.dlr is not None
    assert message.dlr.attempt == 3
    assert await notifier.run_once() == type(report)()  # nothing more to send
