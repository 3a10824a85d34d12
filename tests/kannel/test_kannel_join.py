"""ВСТУПИТЬ / JOIN through a real Kannel: the reply, then the welcome SMS, each once."""

from __future__ import annotations

from kannel_harness import Phones
from service_harness import Service, member, numbers

import ledger

KANNEL_CONVENTION = "get"


async def test_join_by_sms_then_the_welcome_arrives(service: Service, phones: Phones) -> None:
    russian, english, _ = numbers()

    # The reply and the welcome (sent by the worker once the join commits) may
    # reach the phone in either order.
    await phones.send(russian, "ВСТУПИТЬ", ucs2=True)
    texts = {m.text: m for m in await phones.expect(russian, 2)}
    assert set(texts) == {
        "Вы вступили в бонусную программу!",
        "Вы в программе! Баланс: 0 баллов. *111*455# или ПОМОЩЬ на 4555",
    }
    assert {(m.coding, m.parts) for m in texts.values()} == {("ucs-2", 1)}

    await phones.send(english, "join")
    texts = {m.text: m for m in await phones.expect(english, 2)}
    assert set(texts) == {
        "You have joined the bonus programme!",
        "Welcome to the bonus programme! Balance: 0 points. Menu: dial *111*455#. "
        "Or text HELP to 4555.",
    }
    assert {m.coding for m in texts.values()} == {"text"}

    again = await phones.ask(russian, "вступить", ucs2=True)
    assert again.text == "Вы уже в программе. Баланс - ответьте БАЛАНС"
    # One welcome each, however often they write.
    welcomes = [m for m in await ledger.list_outbox(service.pool) if m.event == "welcome"]
    assert sorted(m.msisdn for m in welcomes) == sorted([russian, english])


async def test_a_blocked_number_is_told_so(service: Service, phones: Phones) -> None:
    blocked, _, _ = numbers()
    await member(service.pool, blocked, points=100)
    assert (await ledger.block(service.pool, blocked, key=f"kb-{blocked}", reason="fraud")).ok
    for text in ("БАЛАНС", "ВСТУПИТЬ"):
        reply = await phones.ask(blocked, text, ucs2=True)
        assert reply.text == "Бонусный счёт заблокирован."
