"""Conversation tests: YAML files in which menu designers write what a session must look like.

A file holds conversations; each is run for every channel, gateway and
language it names, against a real app over HTTP (the same phone as
``simulate``), after setting up the subscriber's state in the ledger::

    defaults: {channel: ussd, languages: [ru, en], msisdn: "+79161000001"}
    conversations:
      - name: balance
        given: {enrolled: true, balance: 1250}
        steps:
          - dial                               # the channel's code; or dial: "*111*455*1#"
          - expect: {ru: "Бонусы", en: "Bonus points"}
          - send: "1"
          - expect_regex: {ru: "Баланс: 1.250", en: "Balance: 1,250"}
          - expect_balance: 1250

Steps: ``dial [code]``, ``send KEYS``, ``timeout`` (IVR: press nothing),
``hangup``, ``sms TEXT``; ``expect TEXT`` (contains), ``expect_regex RE``,
``expect_not TEXT``, ``expect_exact TEXT``, ``expect_end``, ``expect_continue``,
``expect_operator``, ``expect_balance N``, ``expect_balance_change +/-N``,
``expect_notification TEXT`` (outbox, SMS); ``do ACTION`` changes the ledger
behind the session's back (``block``, ``enroll``, ``decline_pending_gifts``,
``withdraw_rewards``, ``accrue: N``). Any text may be a mapping by language.

``gateway`` (or ``gateways``) names the dialects the phone speaks, any of
``ussd_service/channels/``; a channel none is named for uses its default
(``africastalking``, ``twilio``, ``sms``). A conversation run over several
gateways of one channel has the gateway in its id: ``name[ivr-voicexml-ru]``.

``given``: ``enrolled``, ``status: blocked``, ``balance``, ``pending_gifts:
[{from, points}]``, ``sent_gifts: [{to, points}]``, ``subscribers: {NUMBER:
{enrolled, balance}}`` (other numbers), ``catalog: default|none``,
``ledger: down`` (the app's database is unreachable).

Modules: ``spec`` reads the files, ``fixtures`` sets up the ledger and the
sandbox servers, ``runner`` runs one conversation, ``command`` is
``ussd-service test-conversations``. Under pytest,
``tests/conversations/conftest.py`` collects each file.
"""

from designer.conversations.command import test_conversations
from designer.conversations.runner import ConversationEnv, failure_report, run_conversation
from designer.conversations.spec import (
    Conversation,
    ConversationFailedError,
    ConversationFileError,
    Step,
    load_file,
)

__all__ = [
    "Conversation",
    "ConversationEnv",
    "ConversationFailedError",
    "ConversationFileError",
    "Step",
    "failure_report",
    "load_file",
    "run_conversation",
    "test_conversations",
]
