"""Micro-benchmark of the engine: hops per second, and what a hop costs as menus grow.

Run: ``.venv/bin/python -m bench.engine``. Reports
- steps per second on the default menu (USSD, a walk through balance and back);
- the cost of one hop on synthetic menus of 100 and 10,000 nodes, at depth 1
  and 50 (it must not grow: no replay, no per-hop work over the whole menu);
- what binding a model with ``Machine.add_model`` would cost per hop, against
  firing the compiled machine's events on a throwaway object (what we do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from menus.engine import Menu, SessionState
from menus.model import MenuFile
from menus.operations import OperationResult
from ussd_service.menu_files import load_menus

DEFAULT_MENU = Path(__file__).resolve().parent.parent / "menu_definitions.yaml"
_TEXTS = {
    "more": {"en": "More"},
    "back": {"en": "Back"},
    "yes": {"en": "Yes"},
    "no": {"en": "No"},
    "invalid_input": {"en": "Invalid."},
    "ivr_option": {"en": "For {label}, press {key}."},
}


class StaticOperations:
    """Answers every operation with a fixed result (no backend: the engine alone)."""

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        if name == "subscriber":
            return OperationResult("ok", {"status": "active", "language": "ru"})
        if name == "balance":
            return OperationResult(
                "ok",
                {"available": 1200, "pending_in": 0, "expiring_points": 0, "expiring_date": None},
            )
        return OperationResult("ok", {})


def synthetic_menu(size: int) -> Menu:
    """A chain of ``size`` menus (option 1 goes deeper, 2 ends), built without YAML."""
    nodes: dict[str, Any] = {
        "end": {"kind": "message", "text": {"en": "Bye"}},
        "operator": {"kind": "operator", "text": {"en": "Operator"}},
    }
    for index in range(size):
        nxt = f"n{index + 1}" if index + 1 < size else "end"
        nodes[f"n{index}"] = {
            "kind": "menu",
            "text": {"en": f"Menu {index}"},
            "options": [
                {"key": "1", "label": {"en": "Deeper"}, "target": nxt},
                {"key": "2", "label": {"en": "Leave"}, "target": "end"},
            ],
        }
    model = MenuFile.model_validate(
        {
            "version": 1,
            "languages": ["en"],
            "default_language": "en",
            "entry": {"ussd": {"code": "*1#", "start": "n0", "home": "n0"}},
            "operator": "operator",
            "unavailable": "end",
            "texts": _TEXTS,
            "nodes": nodes,
        }
    )
    return Menu(model, f"synthetic-{size}")


async def _per_hop(menu: Menu, state: SessionState, key: str, rounds: int) -> float:
    ops = StaticOperations()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await menu.step(state, key, ops)
        best = min(best, (time.perf_counter() - started) / rounds)
    return best


def _add_model_cost(menu: Menu, rounds: int = 20) -> float:
    class Model:
        state = ""

    started = time.perf_counter()
    for _ in range(rounds):
        model = Model()
        menu.machine.add_model(model, initial=menu.model.entry.ussd.start)
        menu.machine.remove_model(model)
    return (time.perf_counter() - started) / rounds


async def main() -> None:
    """Print the figures."""
    ops = StaticOperations()
    menu = load_menus(DEFAULT_MENU).current
    start = (await menu.start("ussd", ops)).state
    walk = ["1", "0", "2", "0", "3", "0", "6", "0"]
    hops = 0
    started = time.perf_counter()
    while time.perf_counter() - started < 2.0:
        state = start
        for key in walk:
            state = (await menu.step(state, key, ops)).state
            hops += 1
    elapsed = time.perf_counter() - started
    print(f"default menu: {hops / elapsed:,.0f} steps/s ({elapsed / hops * 1e6:.0f} us/step)")
    for size in (100, 10_000):
        t0 = time.perf_counter()
        synthetic = synthetic_menu(size)
        compile_ms = (time.perf_counter() - t0) * 1000
        shallow = (await synthetic.start("ussd", ops)).state
        deep = SessionState(synthetic.version, f"n{min(50, size - 2)}", "en", "ussd")
        deep.breadcrumb = [f"n{i}" for i in range(50)][-8:]
        cost_1 = await _per_hop(synthetic, shallow, "1", 300)
        cost_50 = await _per_hop(synthetic, deep, "1", 300)
        bind = _add_model_cost(synthetic)
        print(
            f"{size:>6} nodes: compile {compile_ms:7.1f} ms; hop at depth 1 {cost_1 * 1e6:6.0f} us,"
            f" depth 50 {cost_50 * 1e6:6.0f} us; add_model+remove_model {bind * 1e6:8.0f} us"
        )


if __name__ == "__main__":
    asyncio.run(main())
