"""The Turn API: the engine names operations and the caller runs them; tables are injected."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from menu_harness import DEFAULT_ANSWERS, MINI, OPERATIONS, ROOT, ScriptedOperations, write

import menus.hop
import menus.nodes
from menus import (
    KINDS,
    Menu,
    MenuError,
    MenuRegistry,
    OperationResult,
    OperationSpec,
    PendingOperation,
    StepResult,
    Turn,
    edges_of,
    load_menu,
    validate_text,
)

# MINI's menu with one more option: a confirmation before a redemption.
REDEEM = MINI.replace(
    '      - {key: "2", label: {ru: "Оператор", en: "Operator"}, target: operator}\n',
    '      - {key: "2", label: {ru: "Оператор", en: "Operator"}, target: operator}\n'
    '      - {key: "3", label: {ru: "Обмен", en: "Redeem"}, target: sure}\n',
).replace(
    "  done:\n",
    "  sure:\n"
    "    kind: confirm\n"
    '    text: {ru: "Уверены?", en: "Sure?"}\n'
    '    "yes": redeem\n'
    '    "no": main\n'
    "  redeem:\n"
    "    kind: action\n"
    "    operation: redeem\n"
    "    args: {reward_code: r1}\n"
    "    results: {ok: done, default: sorry}\n"
    "  done:\n",
)


class LostRaceError(Exception):
    """What the service's claim raises when another hop won the session."""


def _answer(pending: PendingOperation) -> OperationResult:
    answer = DEFAULT_ANSWERS.get(pending.name, OperationResult("ok"))
    assert isinstance(answer, OperationResult)
    return answer


def _finish(turn: Turn) -> tuple[StepResult, list[PendingOperation]]:
    seen = []
    while turn.pending is not None:
        seen.append(turn.pending)
        turn.resume(_answer(turn.pending))
    return turn.result, seen


def _same(left: StepResult, right: StepResult) -> None:
    assert left.state.to_dict() == right.state.to_dict()
    assert left.screen == right.screen
    assert (left.accepted, left.operations) == (right.accepted, right.operations)


async def test_turns_match_the_async_api(default_menu: Menu) -> None:
    turn = default_menu.turn_start("ussd", language="en")
    assert turn.pending == PendingOperation("subscriber", {}, mutating=False)
    assert not turn.done
    started, seen = _finish(turn)
    assert [p.name for p in seen] == ["subscriber"]
    _same(started, await default_menu.start("ussd", ScriptedOperations(), language="en"))

    for key in ("1", "0", "3", "1"):
        stepped, _seen = _finish(default_menu.turn_step(started.state, key))
        _same(stepped, await default_menu.step(started.state, key, ScriptedOperations()))
        started = stepped
    shown, _seen = _finish(default_menu.turn_show(started.state))
    _same(shown, await default_menu.show(started.state, ScriptedOperations()))


def test_a_turn_without_operations_is_done_at_once(default_menu: Menu) -> None:
    started, _seen = _finish(default_menu.turn_start("ussd"))
    turn = default_menu.turn_step(started.state, "9")  # a wrong key runs nothing
    assert turn.done
    assert turn.pending is None
    assert not turn.result.accepted
    assert turn.result.state.failures == 1
    with pytest.raises(RuntimeError, match="waits for no operation"):
        turn.resume(OperationResult("ok"))


def test_result_is_refused_while_an_operation_is_pending(default_menu: Menu) -> None:
    turn = default_menu.turn_start("ussd")
    with pytest.raises(RuntimeError, match="waits for operation"):
        _ = turn.result


def test_a_caller_failure_never_goes_through_the_engine(tmp_path: Path) -> None:
    menu = load_menu(write(tmp_path, REDEEM), operations=OPERATIONS)
    at_main, _seen = _finish(menu.turn_start("ussd", language="en"))
    asked, _seen = _finish(menu.turn_step(at_main.state, "3"))
    assert asked.state.node == "sure"
    before = asked.state.to_dict()

    turn = menu.turn_step(asked.state, "1")
    pending = turn.pending
    assert pending == PendingOperation("redeem", {"reward_code": "r1"}, mutating=True)

    def claim_then_run(pending: PendingOperation) -> OperationResult:
        if pending.mutating:
            raise LostRaceError(pending.name)
        return OperationResult("ok")

    with pytest.raises(LostRaceError):
        claim_then_run(pending)
    # The turn is simply dropped: the caller's state is as it was, and a retry works.
    assert asked.state.to_dict() == before
    retried, seen = _finish(menu.turn_step(asked.state, "1"))
    assert [p.name for p in seen] == ["redeem"]
    assert retried.state.node == "done"


def test_mutating_comes_from_the_injected_table(tmp_path: Path) -> None:
    path = write(tmp_path, MINI)
    table = {
        **OPERATIONS,
        "balance": OperationSpec(**{**vars(OPERATIONS["balance"]), "mutating": True}),
    }
    default = load_menu(path, operations=OPERATIONS)
    injected = load_menu(path, operations=table)
    assert injected.operations is table
    turns = [
        menu.turn_step(_finish(menu.turn_start("ussd"))[0].state, "1")
        for menu in (default, injected)
    ]
    assert [t.pending.mutating for t in turns if t.pending] == [False, True]


def test_the_validator_checks_against_the_injected_table(tmp_path: Path) -> None:
    custom = MINI.replace("operation: balance", "operation: teleport")
    table: dict[str, OperationSpec] = {
        "teleport": OperationSpec(
            args=frozenset(), codes=frozenset({"ok", "unavailable"}), mutating=True
        )
    }
    _model, found = validate_text(custom, "m.yaml", operations=OPERATIONS)
    assert any("unknown operation 'teleport'" in d.message for d in found)
    assert validate_text(custom, "m.yaml", operations=table)[1] == []
    with pytest.raises(MenuError, match="unknown operation 'balance' \\(teleport\\)"):
        load_menu(write(tmp_path, MINI), operations=table)

    registry = MenuRegistry.from_file(write(tmp_path, custom), operations=table)
    assert registry.operations is table
    reloaded = registry.reload(write(tmp_path, custom.replace('en: "Done"', 'en: "Over"')))
    assert reloaded.operations is table
    with pytest.raises(MenuError):
        registry.reload(write(tmp_path, MINI))


def test_masks_input_only_for_pin_inputs(tmp_path: Path) -> None:
    pin = MINI.replace(
        "  done:\n",
        "  ask_pin:\n"
        "    kind: input\n"
        '    text: {ru: "ПИН?", en: "PIN?"}\n'
        "    var: pin\n"
        "    validator: {type: pin}\n"
        "    next: ask_phone\n"
        "  ask_phone:\n"
        "    kind: input\n"
        '    text: {ru: "Номер?", en: "Number?"}\n'
        "    var: phone\n"
        "    validator: {type: phone}\n"
        "    next: done\n"
        "  done:\n",
    ).replace("results: {ok: done, default: sorry}", "results: {ok: ask_pin, default: sorry}")
    menu = load_menu(write(tmp_path, pin), operations=OPERATIONS)
    assert menu.masks_input("ask_pin")
    assert not menu.masks_input("ask_phone")
    assert not menu.masks_input("main")
    assert not menu.masks_input("no_such_node")


def test_edges_are_computed_once_and_shared(default_menu: Menu) -> None:
    model = default_menu.model
    assert model.graph() is model.graph()
    for node_id, node in default_menu.nodes.items():
        assert default_menu.edges(node_id) == edges_of(node, model) == model.graph()[node_id]
    main = default_menu.edges("main")
    assert [edge.label for edge in main][:3] == ["1", "2", "3"]
    assert all(edge.trigger.startswith("opt_") and not edge.implicit for edge in main)
    with pytest.raises(KeyError):
        default_menu.edges("no_such_node")


def test_the_engine_core_is_synchronous() -> None:
    modules = [menus.hop, *(sys.modules[kind.__module__] for kind in KINDS.values())]
    for module in modules:
        for name, value in vars(module).items():
            assert not inspect.iscoroutinefunction(value), f"{module.__name__}.{name}"
            for attr, member in vars(value).items() if inspect.isclass(value) else ():
                assert not inspect.iscoroutinefunction(member), f"{name}.{attr}"
    drivers = {n for n, v in vars(Menu).items() if inspect.iscoroutinefunction(v)}
    assert drivers == {"start", "step", "show"}


def test_menus_imports_no_backend() -> None:
    code = (
        "import sys, menus, menus.validate, menus.registry, menus.nodes\n"
        "banned = {'ussd_service', 'session_store', 'ledger', 'redis', 'asyncpg', 'aiohttp'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & banned))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_kinds_are_registered_in_listing_order() -> None:
    # The built-in kinds first, in this order (schema, "expected tags" messages);
    # a kind added later comes after them unless its module says otherwise.
    builtin = ["menu", "input", "confirm", "action", "list", "message", "operator", "route"]
    assert list(KINDS)[: len(builtin)] == builtin
    assert menus.nodes.KINDS is KINDS
