"""History as the subscriber reads it: signs, kinds, counterparties and rewards.

The ledger state is built directly (gifts sent, declined and accepted, a
redemption) on a fixed clock, then the real menu is stepped with the
service's ledger binding, page by page, in both languages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

import ledger
from menus import Menu
from ussd_service.menu_files import load_menus
from ussd_service.operations import LedgerOperations

MENU_FILE = Path(__file__).resolve().parents[2] / "menu_definitions.yaml"
ME = "+79161000001"
FRIEND = "+79162000002"
OTHER = "+79303000003"
START = datetime(2026, 5, 12, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_menus(MENU_FILE).current


async def _story(pool: asyncpg.Pool, clock: ledger.ManualClock, language: str = "ru") -> None:
    """Earn 700, redeem 50 SMS, gift 15 and 11, get 11 back, receive 10 and 20."""
    keys = iter(f"story-{n}" for n in range(100))

    def tick() -> dict[str, object]:
        clock.advance(timedelta(minutes=1))
        return {"key": next(keys), "clock": clock}

    await ledger.load_catalog(pool)
    for number in (ME, FRIEND, OTHER):
        assert (await ledger.enroll(pool, number, **tick())).ok
    assert (await ledger.set_language(pool, ME, language, **tick())).ok
    assert (await ledger.accrue(pool, ME, 700, **tick())).ok
    assert (await ledger.accrue(pool, FRIEND, 100, **tick())).ok
    assert (await ledger.redeem(pool, ME, "sms-50", **tick())).ok
    assert (await ledger.gift(pool, ME, FRIEND, 15, **tick())).ok
    sent = await ledger.gift(pool, ME, OTHER, 11, **tick())
    assert (await ledger.decline_gift(pool, OTHER, sent.unwrap().gift_id, **tick())).ok
    for points in (10, 20):
        gift = await ledger.gift(pool, FRIEND, ME, points, **tick())
        assert (await ledger.accept_gift(pool, ME, gift.unwrap().gift_id, **tick())).ok


async def _history_pages(menu: Menu, pool: asyncpg.Pool, language: str) -> list[str]:
    ops = LedgerOperations(pool, ME, "test-history", language=language)
    result = await menu.start("ussd", ops, language=language)
    result = await menu.step(result.state, "2", ops)
    pages = [result.screen.text]
    while result.screen.page < result.screen.pages - 1:
        result = await menu.step(result.state, "99", ops)
        pages.append(result.screen.text)
    return pages


EXPECTED = {
    "ru": [
        "12 мая +20 подарок от +7 916 200-00-02",
        "12 мая +10 подарок от +7 916 200-00-02",
        "12 мая +11 возврат подарка для +7 930 300-00-03",
        "12 мая -11 подарок для +7 930 300-00-03",
        "12 мая -15 подарок для +7 916 200-00-02",
        "12 мая -80 за 50 SMS",
        "12 мая +700 начисление",
    ],
    "en": [
        "May 12 +20 gift from +7 916 200-00-02",
        "May 12 +10 gift from +7 916 200-00-02",
        "May 12 +11 gift returned by +7 930 300-00-03",
        "May 12 -11 gift to +7 930 300-00-03",
        "May 12 -15 gift to +7 916 200-00-02",
        "May 12 -80 for 50 SMS",
        "May 12 +700 earned",
    ],
}


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_history_reads_sign_kind_and_counterparty(
    menu: Menu, pg_pool: asyncpg.Pool, language: str
) -> None:
    await _story(pg_pool, ledger.ManualClock(START), language)
    pages = await _history_pages(menu, pg_pool, language)
    lines = [line for page in pages for line in page.split("\n")]
    movements = [line for line in lines if line.startswith(("12 мая", "May 12"))]
    assert movements == EXPECTED[language]
    # The signs are the ledger's (the API's): no "--", nothing received shown negative.
    api = (await ledger.history(pg_pool, ME, 20)).unwrap().items
    assert [f"{item.points:+d}" for item in api] == [
        line.split(" ")[2] for line in EXPECTED[language]
    ]


async def test_history_lines_are_not_options(menu: Menu, pg_pool: asyncpg.Pool) -> None:
    """Read-only lines carry no keys: nothing to press that the menu would refuse."""
    await _story(pg_pool, ledger.ManualClock(START))
    pages = await _history_pages(menu, pg_pool, "ru")
    for page in pages:
        entries = page.split("\n")
        numbered = [line for line in entries if line.split(". ")[0].isdigit()]
        assert numbered in ([], ["99. Ещё", "0. Назад"], ["0. Назад"], ["99. Ещё"]), page
    assert len(pages) > 1
