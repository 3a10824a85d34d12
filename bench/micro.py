"""In-process engine micro-benchmark: ``Menu.step`` cost against menu size and session depth.

No HTTP, Redis or PostgreSQL: a generated menu (``bench.menugen``) is loaded,
a session is walked ``depth`` hops in by pressing ``1``, and the next hop is
timed many times from that same state (``step`` never changes its input
state). The state's JSON round trip (what the service stores in Redis) is
timed with it, since a hop pays for both.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.menugen import generate
from menus import Menu, OperationResult, SessionState
from ussd_service.menu_files import load_menus

BATCH = 200


async def _no_operations(name: str, args: Mapping[str, Any]) -> OperationResult:
    return OperationResult("ok")


async def _state_at(menu: Menu, depth: int) -> SessionState:
    result = await menu.start("ussd", _no_operations)
    for _ in range(depth - 1):
        result = await menu.step(result.state, "1", _no_operations)
        assert result.accepted, result.screen.text
    return result.state


async def _time_step(menu: Menu, state: SessionState, seconds: float) -> dict[str, float]:
    batches: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 5:
        started = time.perf_counter()
        for _ in range(BATCH):
            loaded = SessionState.from_dict(json.loads(json.dumps(state.to_dict())))
            result = await menu.step(loaded, "1", _no_operations)
            json.dumps(result.state.to_dict())
        batches.append((time.perf_counter() - started) / BATCH * 1e6)
    return {"us_per_step": statistics.median(batches), "batches": len(batches)}


# Stub answers of the operations the project's menu calls (shapes as in menus/operations.py).
_ITEMS = [
    {"code": f"r{i}", "title": f"Награда номер {i}", "price": 150 + i, "category": "minutes"}
    for i in range(23)
]
_ANSWERS: dict[str, dict[str, Any]] = {
    "subscriber": {"status": "active", "language": "ru"},
    "balance": {"available": 123456, "pending_in": 10, "pending_out": 0, "expiring_points": 0},
    "catalog": {"items": _ITEMS},
}
# (label, inputs walked before the timed one, timed input); None times Menu.start.
REAL_HOPS: list[tuple[str, list[str], str | None]] = [
    ("start (main menu)", [], None),
    ("main -> 1 balance", [], "1"),
    ("main -> 3 rewards", [], "3"),
    ("rewards -> 7 catalogue page 1", ["3"], "7"),
    ("catalogue -> 99 next page", ["3", "7"], "99"),
    ("main -> 8 invalid", [], "8"),
]


async def _stub_operations(name: str, args: Mapping[str, Any]) -> OperationResult:
    return OperationResult("ok", _ANSWERS.get(name, {}))


async def _time_real(menu: Menu, walk: list[str], value: str | None, seconds: float) -> float:
    result = await menu.start("ussd", _stub_operations)
    for key in walk:
        result = await menu.step(result.state, key, _stub_operations)
    state = result.state
    batches: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 3:
        started = time.perf_counter()
        for _ in range(BATCH // 4):
            if value is None:
                await menu.start("ussd", _stub_operations)
            else:
                await menu.step(state, value, _stub_operations)
        batches.append((time.perf_counter() - started) / (BATCH // 4) * 1e6)
    return statistics.median(batches)


def run_real(path: Path, seconds: float) -> dict[str, float]:
    """Engine cost (us) of navigation hops of the real menu, operations stubbed."""
    menu = load_menus(path).current
    return {
        label: asyncio.run(_time_real(menu, walk, value, seconds))
        for label, walk, value in REAL_HOPS
    }


def run(sizes: list[int], depths: list[int], workdir: Path, seconds: float) -> dict[str, Any]:
    """``{"sizes": {size: {"load_s", "depths": {depth: {"us_per_step"}}}}}``."""
    out: dict[str, Any] = {}
    for size in sizes:
        path = generate(size, workdir / f"micro-{size}.yaml")
        started = time.perf_counter()
        menu = load_menus(path).current
        load_s = time.perf_counter() - started
        depths_out = {}
        for depth in depths:
            state = asyncio.run(_state_at(menu, depth))
            depths_out[str(depth)] = asyncio.run(_time_step(menu, state, seconds))
        out[str(size)] = {"load_s": load_s, "depths": depths_out}
    return {"sizes": out}


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(
            json.dumps(
                run(
                    [100, 1000], [1, 10, 50], Path(tmp), float(sys.argv[1]) if sys.argv[1:] else 1.0
                ),
                indent=1,
            )
        )
