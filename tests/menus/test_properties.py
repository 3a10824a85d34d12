"""Properties: random input and random backend answers never break a session."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from menu_harness import DEFAULT_ANSWERS, OPERATIONS, catalog

from bench.engine import StaticOperations, synthetic_menu
from menus import Menu, OperationResult, SessionState
from menus.gsm import fits

SESSION_BUDGET = 2048  # bytes in Redis per session, state and last reply together
KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "00", "99", "*", "#", ""]
INPUT = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(["89161234567", "+7 916 123-45-67", "100", "100000", "1000001"]),
    st.text(max_size=80),
    st.none(),
)


class RandomOperations:
    """Answers each operation with a result code it may return, chosen by hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        code = self.data.draw(st.sampled_from(sorted(OPERATIONS[name].codes)), label=name)
        if code != "ok":
            return OperationResult(code)
        if name == "catalog":
            count = self.data.draw(st.integers(0, 25), label="items")
            title = self.data.draw(st.sampled_from(["Приз", "Prize", "Приз " * 30]), label="title")
            return catalog(count, title)
        answer = DEFAULT_ANSWERS.get(name, OperationResult("ok"))
        assert isinstance(answer, OperationResult)
        return answer


def _check(result: Any, channel: str) -> None:
    screen = result.screen
    assert screen.node == result.state.node
    if channel == "ussd":
        assert screen.text
        assert fits(screen.text, 182, 80), screen.text
    else:
        assert screen.prompts
    stored = json.dumps(result.state.to_dict(), ensure_ascii=False) + screen.text
    assert len(stored.encode()) < SESSION_BUDGET


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    channel=st.sampled_from(["ussd", "ivr"]),
    language=st.sampled_from(["ru", "en"]),
    inputs=st.lists(INPUT, max_size=25),
)
def test_random_sessions_never_raise_and_fit_the_limits(
    default_menu: Menu, data: st.DataObject, channel: Any, language: str, inputs: list[str | None]
) -> None:
    async def session() -> None:
        ops = RandomOperations(data)
        result = await default_menu.start(channel, ops, language=language)
        _check(result, channel)
        for value in inputs:
            if result.ended:
                break
            restored = SessionState.from_dict(json.loads(json.dumps(result.state.to_dict())))
            result = await default_menu.step(restored, value, ops)
            _check(result, channel)

    asyncio.run(session())


def _hop_cost(menu: Menu, state: SessionState) -> float:
    ops = StaticOperations()

    async def hops() -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                await menu.step(state, "1", ops)
            best = min(best, time.perf_counter() - started)
        return best

    return asyncio.run(hops())


def test_hop_cost_does_not_grow_with_menu_size_or_depth() -> None:
    small, large = synthetic_menu(100), synthetic_menu(10_000)
    shallow = SessionState(small.version, "n0", "en", "ussd")
    base = _hop_cost(small, shallow)
    deep = SessionState(
        large.version, "n50", "en", "ussd", breadcrumb=[f"n{i}" for i in range(42, 50)]
    )
    big = _hop_cost(large, deep)
    # Same work per hop: generous bound for a noisy machine (a replay or a per-hop
    # add_model would be 100x+ slower at 10,000 nodes).
    assert big < base * 3, (base, big)
