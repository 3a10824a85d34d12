"""SMS on 4555 through a real Kannel (the README's get-url), phones played by fakesmsc.

One Kannel, one service (with its notifier) and one database for the module;
each test texts from numbers of its own.
"""

# ruff: noqa: RUF001, RUF003 - Cyrillic commands and replies are what these tests check

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import aiohttp
import pytest
from kannel_harness import KannelGateway, Phones
from service_harness import Service, available, member, numbers, outbox_to, rendered, until

import ledger
from ussd_service.notifier import KannelTransport, Outgoing

KANNEL_CONVENTION = "get"
# What a stranger (not a member) gets for HELP or anything unknown: how to join.
STRANGER_HELP_RU = "Чтобы вступить в бонусную программу, ответьте ВСТУПИТЬ"


# -- gifts by SMS, the numbers typed every way, Latin text and Cyrillic UCS-2 ----------------


@pytest.mark.parametrize(
    ("command", "ucs2"),
    [
        ("DAR {typed} 100", False),
        ("gift {plus} 100", False),
        ("ДАР {typed} 100", True),
        ("Подарок {e164} 100", True),
    ],
)
async def test_gift_by_sms_reaches_both_phones(
    service: Service, phones: Phones, command: str, ucs2: bool
) -> None:
    sender, recipient, typed = numbers()
    plus = f"+7 ({recipient[2:5]}) {recipient[5:8]}-{recipient[8:10]}-{recipient[10:]}"
    await member(service.pool, sender, points=500)
    await member(service.pool, recipient)
    text = command.format(typed=typed, plus=plus, e164=recipient[1:])

    reply = await phones.ask(sender, text, ucs2=ucs2)

    assert reply.sender == "4555"
    assert reply.coding == "ucs-2"  # Cyrillic, so Kannel was told X-Kannel-Coding: 2
    assert re.fullmatch(r"Подарок 100 баллов отправлен\. Его можно принять до .+", reply.text)
    assert await available(service.pool, sender) == 400
    [notice] = await phones.expect(recipient)
    [message] = await outbox_to(service.pool, recipient)
    assert notice.sender == "4555"
    assert notice.coding == "ucs-2"
    assert notice.text == rendered(message, str(service.settings.menu_file))
    assert notice.text.startswith("Вам 100 баллов от +7 916")
    assert await ledger.check(service.pool) == []


async def test_the_recipient_sees_who_sent_the_gift(service: Service, phones: Phones) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=500)
    await member(service.pool, recipient)
    await phones.ask(sender, f"DAR {typed} 70")
    [notice] = await phones.expect(recipient)
    # In full, grouped as people read it: masking is for logs only.
    grouped = f"{sender[:2]} {sender[2:5]} {sender[5:8]}-{sender[8:10]}-{sender[10:]}"
    assert notice.text.startswith(f"Вам 70 баллов от {grouped}."), notice.text


# -- the recipient answers: accept with ДАР, decline with НЕТ ----------------------------------


async def test_recipient_accepts_with_dar_and_declines_with_net(
    service: Service, phones: Phones
) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=500)
    await member(service.pool, recipient)
    await phones.ask(sender, f"DAR {typed} 100")
    await phones.ask(sender, f"DAR {typed} 50")
    await phones.expect(recipient, 2)

    accepted = await phones.ask(recipient, "ДАР", ucs2=True)
    assert accepted.text == "Принято: 100 баллов. Ещё подарков: 1."
    declined = await phones.ask(recipient, "НЕТ", ucs2=True)
    assert declined.text == "Подарок отклонён."
    nothing = await phones.ask(recipient, "нет", ucs2=True)
    assert nothing.text == "Подарков для вас нет."

    to_sender = await phones.expect(sender, 4)
    texts = {m.text for m in to_sender if m.text.startswith("Ваш подарок")}
    assert texts == {"Ваш подарок 100 баллов принят.", "Ваш подарок 50 баллов отклонён."}
    assert await available(service.pool, recipient) == 100
    assert await available(service.pool, sender) == 400  # 100 accepted, 50 back
    assert await ledger.check(service.pool) == []


# -- balance and help ---------------------------------------------------------------------------


async def test_balance_and_help_in_both_scripts(service: Service, phones: Phones) -> None:
    russian, english, _ = numbers()
    stranger = english.replace("2002", "3003")
    await member(service.pool, russian, points=250)
    await member(service.pool, english, points=40, language="en")

    balance = await phones.ask(russian, "БАЛАНС", ucs2=True)
    assert balance.text.startswith("Баланс: 250 баллов.")
    assert balance.coding == "ucs-2"
    latin = await phones.ask(english, "balance")
    # GSM-7 text goes as plain text: no X-Kannel-Coding, no UCS-2.
    assert latin.text.startswith("Balance: 40 points.")
    assert latin.coding == "text"
    assert (await phones.ask(stranger, "HELP")).text == STRANGER_HELP_RU
    assert (await phones.ask(stranger, "помощь", ucs2=True)).text == STRANGER_HELP_RU
    assert (await phones.ask(english, "what?")).text == (
        "GIFT number points - give. GIFT - accept. NO - decline. CANCEL - take back your gift. "
        "BALANCE"
    )


# -- Kannel's retry: the same message twice, one effect -------------------------------------------


async def test_a_message_kannel_retries_is_answered_once(
    service: Service, phones: Phones, kannel: KannelGateway
) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=500)
    await member(service.pool, recipient)
    seen = len(service.lossy.seen)
    service.lossy.count = 1  # the service acts, then its answer is lost: Kannel retries

    reply = await phones.ask(sender, f"ДАР {typed} 120", ucs2=True, within=20)

    first, retry = service.lossy.seen[seen:]
    assert first == retry  # byte for byte, Kannel's id (%I) included
    assert "id=" in first
    assert reply.text.startswith("Подарок 120 баллов отправлен.")
    await asyncio.sleep(1.5)  # nothing else comes: one reply only
    assert [m.text for m in phones.to(sender)] == [reply.text]
    pending = (await ledger.pending_gifts(service.pool, recipient)).unwrap()
    assert [(g.sender, g.points) for g in pending.items] == [(sender, 120)]
    assert await available(service.pool, sender) == 380
    assert len(await phones.expect(recipient)) == 1


# -- notifications, delivery reports, long texts --------------------------------------------------


async def test_delivery_report_marks_the_notification_delivered(
    service: Service, phones: Phones
) -> None:
    sender, recipient, typed = numbers()
    await member(service.pool, sender, points=500, language="en")
    await member(service.pool, recipient, language="en")
    reply = await phones.ask(sender, f"GIFT {typed} 30")
    assert reply.coding == "text"
    [notice] = await phones.expect(recipient)
    assert notice.coding == "text"
    assert " sent you 30 points. Reply GIFT by " in notice.text

    async def delivered() -> bool:
        [message] = await outbox_to(service.pool, recipient)
        return message.dlr is not None and message.dlr.status == "delivered"

    await until(delivered)
    [message] = await outbox_to(service.pool, recipient)
    assert message.status == "sent"
    assert message.dlr is not None
    assert message.dlr.attempt == message.attempts == 1
    assert abs((message.dlr.at - datetime.now(UTC)).total_seconds()) < 60
    metrics = await service.metrics()
    delivered_count = re.search(
        r'^ussd_sms_delivery_reports_total\{result="delivered"\} (\S+)$', metrics, re.MULTILINE
    )
    assert delivered_count is not None
    assert float(delivered_count.group(1)) >= 1
    body = await service.get_json("/v1/outbox", status="sent")
    assert message.id in [item["id"] for item in body["items"]]  # type: ignore[index]


async def test_a_long_cyrillic_text_arrives_concatenated(
    service: Service, phones: Phones, kannel: KannelGateway
) -> None:
    _, recipient, _ = numbers()
    text = "Длинное уведомление: " + " ".join(f"слово{n}" for n in range(25))
    assert len(text) > 140  # three UCS-2 parts
    async with aiohttp.ClientSession() as http:
        transport = KannelTransport(
            http,
            kannel.sendsms_url,
            sender="4555",
            username=service.settings.sms_gateway_username,
            password=kannel.sendsms_password,
        )
        await transport.send(Outgoing(outbox_id=1, attempt=1, to=recipient, text=text))
    [notice] = await phones.expect(recipient)
    assert notice.parts >= 3
    assert (notice.text, notice.coding) == (text, "ucs-2")
