"""Every node kind against its golden data in ``menus/nodes/testdata/<kind>.yaml``.

A new kind's file is picked up without touching this test. After an intended
change, rewrite the expectations with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/menus/test_node_kinds.py`` and review
the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from menu_harness import OPERATIONS
from node_harness import (
    CHANNELS,
    Answers,
    check,
    edge_lines,
    finding,
    kind_files,
    load_cases,
    screen,
    steps,
    yaml,
)

from menus import KINDS, Menu, StepResult, Turn

UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))
FILES = kind_files()
CASES = [
    pytest.param(kind, index, id=f"{kind}: {case['name']}")
    for kind, path in FILES.items()
    for index, case in enumerate(load_cases(path)["cases"])
]


def _finish(turn: Turn, answers: Answers) -> StepResult:
    """Run a turn as a caller does: each pending operation answered, then the result."""
    while (pending := turn.pending) is not None:
        assert pending.mutating == OPERATIONS[pending.name].mutating
        turn.resume(answers(pending.name))
    return turn.result


def converse(menu: Menu, case: Any, channel: Any) -> list[dict[str, Any]]:
    answers = Answers(case.get("answers", {}))
    shortcut = list(case.get("shortcut", [])) if channel == "ussd" else []
    result = _finish(menu.turn_start(channel, case.get("language"), shortcut), answers)
    out = [screen(result)]
    for entry in case[channel][1:]:
        value = entry["input"]
        result = _finish(menu.turn_step(result.state, value), answers)
        out.append({"input": value, **screen(result)})
    return out


def run_case(kind: str, case: Any) -> dict[str, Any]:
    """What the case shows now: findings, or conversations and edges."""
    model, diagnostics = check(case)
    if "errors" in case:
        return {"errors": [finding(d) for d in diagnostics]}
    errors = [finding(d) for d in diagnostics if d.level == "error"]
    assert errors == [], "a conversation case must be a valid menu"
    assert model is not None
    menu = Menu(model, "golden", operations=OPERATIONS)
    got: dict[str, Any] = {
        "edges": {
            node_id: edge_lines(menu, node_id)
            for node_id in case["nodes"]
            if menu.nodes[node_id].kind == kind
        }
    }
    for channel in CHANNELS:
        if channel in case:
            got[channel] = converse(menu, case, channel)
    return got


def _rewrite(path: Path, index: int, got: dict[str, Any]) -> None:
    data = load_cases(path)
    case = data["cases"][index]
    for key, value in got.items():
        case[key] = steps(value) if key in CHANNELS else value
    with path.open("w", encoding="utf-8") as out:
        yaml().dump(data, out)


@pytest.mark.parametrize(("kind", "index"), CASES)
def test_kind_golden(kind: str, index: int) -> None:
    path = FILES[kind]
    case = load_cases(path)["cases"][index]
    got = run_case(kind, case)
    if UPDATE:
        _rewrite(path, index, got)
        return
    for key, value in got.items():
        assert key in case, f"{key} missing from the golden data: run with UPDATE_GOLDEN=1"
        expected = case[key]
        if key == "edges":
            expected = {node_id: list(lines) for node_id, lines in expected.items()}
        else:
            expected = [dict(step) if not isinstance(step, str) else step for step in expected]
        assert value == _plain(expected), key


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_every_kind_has_golden_data() -> None:
    assert set(FILES) == set(KINDS), "one testdata/<kind>.yaml per module of menus.nodes"
    for kind, path in FILES.items():
        cases = load_cases(path)["cases"]
        talks = [case for case in cases if "errors" not in case]
        assert talks, f"{kind}: no conversation"
        assert all(set(CHANNELS) <= set(case) for case in talks), f"{kind}: a channel is missing"
        assert any("errors" in case for case in cases), f"{kind}: no case of its checks"
        assert all("edges" in case for case in talks), f"{kind}: a conversation without edges"
