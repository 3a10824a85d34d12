"""The shipped JSON Schema is up to date; SMS templates render per language."""

from __future__ import annotations

import json

import pytest

from menus import KINDS, Menu, UnknownTemplateError, json_schema, render_sms
from menus.schema import SCHEMA_FILE, schema_text


def test_shipped_schema_is_up_to_date() -> None:
    # Regenerate with: .venv/bin/python -m menus.schema
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()


def test_schema_describes_the_language() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) >= {"version", "languages", "nodes", "entry"}
    kinds = {
        definition["properties"]["kind"]["const"]
        for definition in schema["$defs"].values()
        if "kind" in definition.get("properties", {})
    }
    assert kinds == set(KINDS)
    assert kinds >= {"menu", "input", "confirm", "action", "list", "message", "operator", "route"}
    json.dumps(schema)  # serialisable as is


def test_render_sms_per_language(default_menu: Menu) -> None:
    variables = {"points": 5, "sender": "+79161234567", "expires_at": "2026-12-01"}
    assert render_sms(default_menu, "gift_received", "ru", variables) == (
        "Вам 5 баллов от +7 916 123-45-67. Ответьте ДАР до 1 дек."
    )
    assert render_sms(default_menu, "gift_received", "en", variables) == (
        "+7 916 123-45-67 sent you 5 points. Reply GIFT by Dec 1, 2026 to accept, NO to decline."
    )
    # Unknown language: the default language.
    assert render_sms(default_menu, "decline_ok", "de", {}) == "Подарок отклонён."
    with pytest.raises(UnknownTemplateError):
        render_sms(default_menu, "nope", "ru", {})


def test_default_menu_has_every_sms_text(default_menu: Menu) -> None:
    sms = default_menu.model.sms
    gift_codes = {
        "invalid_recipient",
        "recipient_not_enrolled",
        "self_gift",
        "insufficient_points",
        "below_minimum",
        "above_maximum",
        "daily_cap_exceeded",
        "not_enrolled",
        "blocked",
    }
    assert {f"gift_{code}" for code in gift_codes} | {
        "gift_ok",
        "accept_ok",
        "accept_more",
        "decline_ok",
        "no_pending_gift",
        "balance",
        "help",
    } <= set(sms.replies)
    assert set(sms.notifications) == {
        "gift_received",
        "gift_accepted",
        "gift_declined",
        "gift_cancelled",
        "gift_expired",
        "gift_returned",
        "reward_fulfilled",
        "reward_failed",
        "login_code",  # the web account's sign-in code (ussd_service/web)
        "points_expiring",  # the expiry reminder (ussd_service/reminders.py)
        "welcome",  # on joining, whichever way (ledger.enroll)
    }
