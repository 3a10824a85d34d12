"""SMS on 4555 through a real Kannel whose sms-service uses the README's post-url variant.

Kannel POSTs the text as a ``text/plain; charset="UTF-8"`` body with
``X-Kannel-*`` headers and Kannel's message id in the URL's query.
"""



from __future__ import annotations

import pytest
from kannel_harness import Phones
from service_harness import Service, available, member, numbers

import ledger

KANNEL_CONVENTION = "post"


@pytest.mark.parametrize(
    ("command", "ucs2"),
    [("GIFT +7 916 {local} 60", False), ("ДАР 8{national} 60", True)],
)
async def test_gift_and_accept_through_post_url(
    service: Service, phones: Phones, command: str, ucs2: bool
) -> None:
    sender, recipient, _ = numbers()
    await member(service.pool, sender, points=300)
    await member(service.pool, recipient, language="en")
    seen = len(service.lossy.seen)
    text = command.format(local=recipient[5:], national=recipient[2:])

    reply = await phones.ask(sender, text, ucs2=ucs2)

    assert reply.text.startswith("Подарок 60 баллов отправлен.")
    [request] = service.lossy.seen[seen:]
    assert request.startswith("POST /sms/inbound?id=")
    assert request.endswith(" " + text)  # the body is the text, decoded from UTF-8
    [notice] = await phones.expect(recipient)
    assert notice.coding == "text"
    assert " sent you 60 points. Reply GIFT by " in notice.text
    accepted = await phones.ask(recipient, "gift")
    assert (accepted.text, accepted.coding) == ("Accepted 60 points. Balance: 60 points.", "text")
    assert await available(service.pool, sender) == 240
    assert await ledger.check(service.pool) == []


async def test_a_post_kannel_retries_is_answered_once(service: Service, phones: Phones) -> None:
    russian, _, _ = numbers()
    await member(service.pool, russian, points=75)
    seen = len(service.lossy.seen)
    service.lossy.count = 1

    reply = await phones.ask(russian, "баланс", ucs2=True, within=20)

    first, retry = service.lossy.seen[seen:]
    assert first == retry
    assert reply.text.startswith("Баланс: 75 баллов.")
    assert reply.coding == "ucs-2"
    assert [m.text for m in phones.to(russian)] == [reply.text]
