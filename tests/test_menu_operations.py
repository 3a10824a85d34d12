"""The registry linking menu operation names to ledger functions, derived by type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

import ledger
from menus import MenuError
from menus.operations import OperationSpec
from ussd_service.menu_files import load_menus
from ussd_service.menu_operations import REGISTRY, Operation, menu_operations

MENU_FILE = Path(__file__).resolve().parents[1] / "menu_definitions.yaml"


def test_the_registry_derives_the_table_the_menus_are_checked_against() -> None:
    table = menu_operations()
    assert set(table) == {
        "subscriber", "enroll", "balance", "history", "catalog", "redeem", "gift",
        "pending_gifts", "accept_gift", "decline_gift", "set_language", "gift_check",
        "sent_gifts", "cancel_gift",
    }  # fmt: skip
    gift_codes = {
        "ok", "unavailable", "not_enrolled", "blocked", "invalid_recipient",
        "recipient_not_enrolled", "self_gift", "insufficient_points", "below_minimum",
        "above_maximum", "daily_cap_exceeded",
    }  # fmt: skip
    assert table["gift"] == OperationSpec(
        args=frozenset({"recipient", "points"}), codes=frozenset(gift_codes), mutating=True
    )
    assert table["history"].optional_args == {"limit"}
    # The menu names the gift it takes back; never "the newest" by accident.
    assert table["cancel_gift"] == OperationSpec(
        args=frozenset({"gift_id"}),
        codes=frozenset(
            {"ok", "unavailable", "no_pending_gift", "gift_expired", "gift_not_pending"}
        ),
        mutating=True,
    )
    assert not table["sent_gifts"].mutating
    assert table["catalog"].optional_args == {"category"}
    assert not table["catalog"].mutating
    # The shipped menu runs on exactly this table.
    assert load_menus(MENU_FILE).current.operations == table


def test_a_menu_naming_an_operation_the_registry_lacks_is_refused(tmp_path: Path) -> None:
    text = MENU_FILE.read_text(encoding="utf-8")
    text = text.replace("operation: gift\n", "operation: teleport\n")
    path = tmp_path / "menu.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MenuError, match="unknown operation 'teleport'"):
        load_menus(path)


def test_arguments_mutation_and_codes_come_from_the_function_signature() -> None:
    async def cancel(
        pool: asyncpg.Pool,
        msisdn: str,
        gift_id: int,
        note: str | None = None,
        *,
        key: str,
        settings: ledger.LedgerSettings,
    ) -> ledger.Outcome[Any]:
        raise NotImplementedError

    op = Operation("cancel", cancel, (ledger.Code.GIFT_NOT_PENDING,))
    spec = op.spec()
    assert spec.args == {"gift_id"}
    assert spec.optional_args == {"note"}
    assert spec.mutating
    assert spec.codes == {"ok", "unavailable", "gift_not_pending"}
    assert op.arguments({"gift_id": "42", "note": 7}) == {"gift_id": 42, "note": "7"}
    assert op.arguments({"gift_id": 1, "note": None}) == {"gift_id": 1}


def test_read_only_operations_take_no_key() -> None:
    assert not REGISTRY["balance"].mutating
    assert REGISTRY["gift"].mutating
    assert REGISTRY["gift"].args == {"recipient": str, "points": int}


def test_a_keyword_the_hop_cannot_fill_is_refused_at_import() -> None:
    async def odd(pool: asyncpg.Pool, msisdn: str, *, moon_phase: str) -> ledger.Outcome[Any]:
        raise NotImplementedError

    with pytest.raises(TypeError, match="moon_phase"):
        Operation("odd", odd)


def test_menu_arguments_are_whole_numbers_or_text() -> None:
    async def floaty(pool: asyncpg.Pool, msisdn: str, ratio: float) -> ledger.Outcome[Any]:
        raise NotImplementedError

    with pytest.raises(TypeError, match="int or str"):
        Operation("floaty", floaty)
