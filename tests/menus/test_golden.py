"""Golden conversations on the default menu: every branch, both channels, both languages.

Each script is inputs plus the backend's answers; the expected screens live in
``golden/default_menu.json``. After an intended change of the menu, rewrite
them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/menus/test_golden.py`` and
review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from menu_harness import ScriptedOperations, catalog

from menus import Menu, OperationResult

GOLDEN = Path(__file__).with_name("golden") / "default_menu.json"
R = OperationResult
GIFT_LIMITS = {"minimum": 10, "maximum": 10_000, "available": 1250, "allowance": 20_000}


def sent_gifts(count: int) -> R:
    """``count`` gifts waiting for an answer, 1 point, 2 points... (plurals on the way)."""
    items = [
        {
            "gift_id": i,
            "recipient": f"+7916200000{i % 10}",
            "points": i,
            "expires_at": "2026-05-15T10:00:00+00:00",
        }
        for i in range(1, count + 1)
    ]
    return R("ok", {"items": items, "count": count})


SENT = sent_gifts(2)
CANCELLED = R("ok", {"gift_id": 1, "points": 1, "recipient": "+79162000001", "available": 1251})

# name -> (inputs, answers); the same script runs on USSD and IVR, in ru and en.
SCRIPTS: dict[str, tuple[list[str | None], dict[str, Any]]] = {
    "balance": (["1", "1"], {}),
    "balance_expiring": (
        ["1"],
        {
            "balance": R(
                "ok",
                {
                    "available": 21,
                    "pending_in": 0,
                    "expiring_points": 5,
                    "expiring_date": "2026-06-30",
                },
            )
        },
    ),
    "balance_back": (["1", "0"], {}),
    "history": (["2"], {}),
    "history_empty": (["2", "1"], {"history": R("ok", {"items": []})}),
    "spend_redeem": (["3", "1", "2", "1"], {}),
    "spend_decline": (["3", "2", "1", "2"], {}),
    "spend_all_paged": (["3", "3", "99", "9", "1", "1"], {"catalog": catalog(8)}),
    "spend_short": (
        ["3", "1", "1", "1"],
        {"redeem": R("insufficient_points", {"available": 100, "price": 150})},
    ),
    "spend_empty": (["3", "1", "1"], {"catalog": R("ok", {"items": []})}),
    "gift_ok": (["4", "89161234567", "150", "1"], {}),
    "gift_bad_number_then_ok": (["4", "123", "+7 916 123-45-67", "0", "89161234567"], {}),
    "gift_cancel": (["4", "89161234567", "150", "2"], {}),
    "gift_amount_fails": (["4", "89161234567", "abc", "x", "999999"], {}),
    "pending_accept": (["5", "1", "1"], {}),
    "pending_decline": (["5", "1", "2"], {}),
    "pending_gone": (["5", "1", "1"], {"accept_gift": R("gift_expired")}),
    "pending_empty": (["5"], {"pending_gifts": R("ok", {"items": [], "count": 0})}),
    # Gifts I sent (main 8): pick one, confirm, cancel; no; gone; none; a long list's pages.
    "sent_cancel": (["8", "1", "1"], {"sent_gifts": SENT, "cancel_gift": CANCELLED}),
    "sent_cancel_no": (["8", "1", "2"], {"sent_gifts": SENT}),
    "sent_gone": (
        ["8", "1", "1"],
        {"sent_gifts": SENT, "cancel_gift": R("gift_not_pending", {"status": "accepted"})},
    ),
    "sent_expired": (
        ["8", "1", "1"],
        {"sent_gifts": SENT, "cancel_gift": R("gift_expired", {"status": "expired"})},
    ),
    "sent_empty": (["8", "1"], {"sent_gifts": R("ok", {"items": [], "count": 0})}),
    "sent_paged": (["8", "99", "9", "1"], {"sent_gifts": sent_gifts(7)}),
    "language_switch": (["6", "2"], {}),
    "language_switch_ru": (["6", "1"], {}),
    "operator_key": (["0"], {}),
    "operator_option": (["7"], {}),
    "timeouts": ([None, None, None], {}),
    "wrong_keys": (["9", "9", "9"], {}),  # 8 is "Gifts I sent"
    "not_enrolled_join": (["1", "1", "1"], {"subscriber": R("ok", {"status": "not_enrolled"})}),
    "not_enrolled_no": (["1", "2"], {"subscriber": R("ok", {"status": "not_enrolled"})}),
    "not_enrolled_blocked": (
        ["1", "1"],
        {"subscriber": R("ok", {"status": "not_enrolled"}), "enroll": R("blocked")},
    ),
    "blocked": ([], {"subscriber": R("ok", {"status": "blocked"})}),
    "backend_down": ([], {"subscriber": R("unavailable")}),
    "balance_down": (["1"], {"balance": R("unavailable")}),
}
for _code in (
    "invalid_recipient",
    "recipient_not_enrolled",
    "self_gift",
    "insufficient_points",
    "below_minimum",
    "above_maximum",
    "daily_cap_exceeded",
    "not_enrolled",
    "blocked",
    "unavailable",
):
    SCRIPTS[f"gift_{_code}"] = (
        ["4", "89161234567", "150", "1"],
        {"gift": R(_code, {"available": 100} if _code == "insufficient_points" else {})},
    )
# Refused before the confirmation: who cannot receive, what cannot be given.
SCRIPTS["gift_check_self"] = (
    ["4", "89161234567", "89169999999", "150"],
    {"gift_check": [R("ok", GIFT_LIMITS), R("self_gift", GIFT_LIMITS), R("ok", GIFT_LIMITS)]},
)
SCRIPTS["gift_check_not_member"] = (
    ["4", "89161234567"],
    {"gift_check": [R("ok", GIFT_LIMITS), R("recipient_not_enrolled", GIFT_LIMITS)]},
)
SCRIPTS["gift_amount_limits"] = (["4", "89161234567", "5", "10001", "150"], {})
SCRIPTS["gift_amount_over_balance"] = (["4", "89161234567", "5000", "1000"], {})
SCRIPTS["gift_too_few_points"] = (
    ["4"],
    {"gift_check": R("ok", {**GIFT_LIMITS, "available": 5})},
)

CASES = [
    (name, channel, language)
    for name in SCRIPTS
    for channel in ("ussd", "ivr")
    for language in ("ru", "en")
]


def _screen(result: Any) -> dict[str, Any]:
    screen = result.screen
    out: dict[str, Any] = {"node": screen.node}
    if screen.ivr is not None or screen.prompts:
        out["say"] = [p.audio or p.text for p in screen.prompts]
    else:
        out["text"] = screen.text
    if screen.final:
        out["final"] = True
    if screen.handoff:
        out["handoff"] = screen.handoff.reason
    return out


async def _converse(menu: Menu, name: str, channel: Any, language: str) -> list[dict[str, Any]]:
    inputs, answers = SCRIPTS[name]
    # Answer lists are consumed call by call: each run gets its own copy.
    ops = ScriptedOperations({k: list(v) if isinstance(v, list) else v for k, v in answers.items()})
    if "subscriber" not in answers:
        ops.answers["subscriber"] = R("ok", {"status": "active", "language": language})
    result = await menu.start(channel, ops, language=language)
    screens = [_screen(result)]
    for value in inputs:
        if result.ended:
            break
        result = await menu.step(result.state, value, ops)
        screens.append({"input": value, **_screen(result)})
    return screens


def _load() -> dict[str, Any]:
    if GOLDEN.exists():
        data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
        return data
    return {}


@pytest.mark.parametrize(("name", "channel", "language"), CASES)
async def test_conversation(default_menu: Menu, name: str, channel: str, language: str) -> None:
    key = f"{name}/{channel}/{language}"
    got = await _converse(default_menu, name, channel, language)
    if os.environ.get("UPDATE_GOLDEN"):
        golden = _load()
        golden[key] = got
        GOLDEN.write_text(
            json.dumps(dict(sorted(golden.items())), ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )
    assert got == _load()[key]


def test_golden_file_has_no_stale_conversations() -> None:
    expected = {f"{n}/{c}/{lang}" for n, c, lang in CASES}
    assert set(_load()) == expected
