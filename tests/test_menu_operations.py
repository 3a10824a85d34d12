"""The registry linking menu operation names to ledger functions, derived by type."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import ledger
from menus.operations import OPERATIONS
from ussd_service.menu_operations import REGISTRY, Operation, menu_operations


def test_the_registry_derives_exactly_the_table_the_menus_were_written_against() -> None:
    assert menu_operations() == dict(OPERATIONS)


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
