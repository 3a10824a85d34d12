"""Helpers of the menus tests: a small menu to break, scripted operations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from menus import OperationResult
from ussd_service.menu_operations import menu_operations

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MENU = ROOT / "menu_definitions.yaml"
# The operations the service offers menus (its registry, linked to the ledger).
OPERATIONS = menu_operations()

# A small, valid menu; validator tests break it one line at a time.
MINI = """\
version: 1
languages: [ru, en]
default_language: ru
entry:
  ussd: {code: "*111*455#", start: main, home: main}
operator: operator
unavailable: sorry
texts:
  more: {ru: "Ещё", en: "More"}
  back: {ru: "Назад", en: "Back"}
  "yes": {ru: "Да", en: "Yes"}
  "no": {ru: "Нет", en: "No"}
  invalid_input: {ru: "Ошибка.", en: "Invalid."}
  ivr_option: {ru: "{label} — нажмите {key}.", en: "For {label}, press {key}."}
nodes:
  main:
    kind: menu
    text: {ru: "Меню", en: "Menu"}
    options:
      - {key: "1", label: {ru: "Баланс", en: "Balance"}, target: balance}
      - {key: "2", label: {ru: "Оператор", en: "Operator"}, target: operator}
  balance:
    kind: action
    operation: balance
    results: {ok: done, default: sorry}
  done:
    kind: message
    text: {ru: "Готово", en: "Done"}
  sorry:
    kind: message
    text: {ru: "Позже", en: "Later"}
  operator:
    kind: operator
    text: {ru: "Оператор", en: "Operator"}
"""


class ScriptedOperations:
    """The Operations port answered from a table: name -> result (or a list, one per call).

    Records every call, so tests can assert what the engine asked for.
    """

    def __init__(self, answers: Mapping[str, Any] | None = None) -> None:
        self.answers: dict[str, Any] = dict(DEFAULT_ANSWERS)
        self.answers.update(answers or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        self.calls.append((name, dict(args)))
        answer = self.answers.get(name, OperationResult("ok"))
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        assert isinstance(answer, OperationResult)
        return answer

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def catalog(count: int, title: str = "Награда") -> OperationResult:
    items = [
        {"code": f"r{i}", "title": f"{title} {i}", "price": 100 * i, "category": "telecom"}
        for i in range(1, count + 1)
    ]
    return OperationResult("ok", {"items": items})


DEFAULT_ANSWERS: dict[str, Any] = {
    "subscriber": OperationResult("ok", {"status": "active", "language": "ru"}),
    "balance": OperationResult(
        "ok",
        {
            "available": 1250,
            "pending_in": 40,
            "pending_out": 0,
            "expiring_points": 0,
            "expiring_date": None,
        },
    ),
    "history": OperationResult(
        "ok",
        {
            "items": [
                {
                    "kind": "gift_received",
                    "points": 50,
                    "amount": 50,
                    "created_at": "2026-03-07T10:00:00+03:00",
                    "counterparty": "+79161234567",
                    "reward": None,
                },
                {
                    "kind": "redemption",
                    "points": -300,
                    "amount": 300,
                    "created_at": "2026-03-05T10:00:00+03:00",
                    "counterparty": None,
                    "reward": "Награда 3",
                },
                {
                    "kind": "accrual",
                    "points": 120,
                    "amount": 120,
                    "created_at": "2026-03-01T10:00:00+03:00",
                    "counterparty": None,
                    "reward": None,
                },
            ]
        },
    ),
    "catalog": catalog(3),
    "redeem": OperationResult(
        "ok", {"reward_title": "Награда 2", "points": 200, "available": 1050}
    ),
    "gift": OperationResult(
        "ok", {"gift_id": "g1", "points": 100, "expires_at": "2026-04-01", "available": 1150}
    ),
    "gift_check": OperationResult(
        "ok",
        {
            "recipient": "+79161234567",
            "minimum": 10,
            "maximum": 10_000,
            "available": 1250,
            "allowance": 20_000,
        },
    ),
    "pending_gifts": OperationResult(
        "ok",
        {
            "items": [
                {
                    "gift_id": "g7",
                    "sender": "+79161234567",
                    "points": 50,
                    "expires_at": "2026-04-01",
                }
            ],
            "count": 1,
        },
    ),
    "accept_gift": OperationResult(
        "ok", {"gift_id": "g7", "points": 50, "sender": "+79161234567", "available": 1300}
    ),
    "decline_gift": OperationResult("ok", {"gift_id": "g7", "points": 50, "remaining": 0}),
    "enroll": OperationResult("ok", {"status": "active"}),
    "set_language": OperationResult("ok", {"language": "en"}),
}


def write(tmp_path: Path, text: str, name: str = "menu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
