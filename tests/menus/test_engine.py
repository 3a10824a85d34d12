"""The engine on a small menu with every node kind: moves, navigation, counters, IVR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from menu_harness import OPERATIONS, ScriptedOperations, catalog, write

from menus import Menu, OperationResult, SessionState, load_menu
from menus.limits import MAX_BREADCRUMB, MAX_STEPS_PER_HOP

ENGINE_MENU = """\
version: 7
languages: [en, ru]
default_language: en
entry:
  ussd: {code: "*5#", start: start, home: main}
  ivr: {code: "0890", start: start, home: main}
channels:
  ussd: {max_failures: 3, max_timeouts: 2}
  ivr:
    voice: {en: Polly.Joanna, ru: Polly.Tatyana}
    language_codes: {en: en-US, ru: ru-RU}
    input_timeout: 7
    max_failures: 2
    max_timeouts: 2
    operator_destination: "+70000000000"
operator: operator
unavailable: later
variables:
  sub.status: {max_length: 12}
  points: {max_length: 7}
  phone: {max_length: 12}
  item.title: {max_length: 20, unicode: true}
  item.price: {max_length: 6}
  title: {max_length: 20, unicode: true}
  res.available: {max_length: 7}
texts:
  more: {en: "More", ru: "Ещё"}
  back: {en: "Back", ru: "Назад"}
  "yes": {en: "Yes", ru: "Да"}
  "no": {en: "No", ru: "Нет"}
  invalid_input: {en: "Invalid.", ru: "Ошибка."}
  ivr_option: {en: "For {label}, press {key}.", ru: "{label} — нажмите {key}."}
nodes:
  start:
    kind: action
    operation: subscriber
    save_as: sub
    results: {ok: by_status}
  by_status:
    kind: route
    routes:
      - {when: 'sub.status == "blocked"', target: blocked}
    default: main
  main:
    kind: menu
    text: {en: "Main", ru: "Главное", audio: {en: main-en.wav, ru: main-ru.wav}}
    options:
      - {key: "1", label: {en: "Points", ru: "Баллы"}, target: ask_points}
      - {key: "2", label: {en: "Shop", ru: "Магазин"}, target: shop}
      - {key: "3", label: {en: "Phone", ru: "Телефон"}, target: ask_phone}
      - {key: "4", label: {en: "VIP", ru: "VIP"}, target: done, when: 'sub.status == "vip"'}
      - {key: "5", label: {en: "Russian", ru: "Русский"}, target: to_ru}
      - {key: "6", label: {en: "Loop", ru: "Цикл"}, target: loop_a}
      - key: "7"
        label: {en: "Operator", ru: "Оператор"}
        target: operator
        channels: [ussd]
  ask_points:
    kind: input
    text: {en: "How many points?", ru: "Сколько баллов?"}
    var: points
    validator: {type: integer, min: 1, max: 500}
    error: {en: "1 to 500, please.", ru: "От 1 до 500."}
    next: confirm
    on_failure: done
  confirm:
    kind: confirm
    text: {en: "Use {points} points?", ru: "Списать {points}?"}
    "yes": spend
    "no": main
  spend:
    kind: action
    operation: redeem
    args: {reward_code: $points}
    save_as: res
    results:
      ok: done
      insufficient_points: short
      default: later
  ask_phone:
    kind: input
    text: {en: "Number?", ru: "Номер?"}
    var: phone
    validator: {type: phone}
    next: done
  shop:
    kind: list
    text: {en: "Rewards:", ru: "Награды:"}
    operation: catalog
    args: {category: telecom}
    item: {en: "{item.title} {item.price}", ru: "{item.title} {item.price}"}
    select: {code: code, title: title}
    next: bought
    empty: nothing
  bought:
    kind: message
    text: {en: "You chose {title}.", ru: "Вы выбрали {title}."}
  to_ru:
    kind: action
    operation: set_language
    args: {language: ru}
    set_language: ru
    results: {ok: main, default: main}
  loop_a:
    kind: route
    routes:
      - {when: "true", target: loop_b}
    default: loop_b
  loop_b:
    kind: route
    routes:
      - {when: "true", target: loop_a}
    default: done
  done:
    kind: message
    text: {en: "Done. Balance {res.available}.", ru: "Готово. Баланс {res.available}."}
  short:
    kind: message
    text: {en: "Not enough points.", ru: "Мало баллов."}
  nothing:
    kind: message
    text: {en: "Nothing here.", ru: "Пусто."}
  blocked:
    kind: message
    text: {en: "Blocked.", ru: "Заблокировано."}
  later:
    kind: message
    text: {en: "Try later.", ru: "Попробуйте позже."}
  operator:
    kind: operator
    reason: asked
    text: {en: "Connecting.", ru: "Соединяем."}
"""

MAIN_EN = "Main\n1. Points\n2. Shop\n3. Phone\n5. Russian\n6. Loop\n7. Operator"


@pytest.fixture(scope="module")
def menu(tmp_path_factory: pytest.TempPathFactory) -> Menu:
    return load_menu(write(tmp_path_factory.mktemp("engine"), ENGINE_MENU), operations=OPERATIONS)


async def walk(
    menu: Menu, inputs: list[str | None], ops: ScriptedOperations, channel: Any = "ussd"
) -> list[Any]:
    result = await menu.start(channel, ops)
    results = [result]
    for value in inputs:
        result = await menu.step(result.state, value, ops)
        results.append(result)
    return results


async def test_start_runs_action_and_route_then_shows_menu(
    menu: Menu, ops: ScriptedOperations
) -> None:
    [first] = await walk(menu, [], ops)
    assert first.screen.text == MAIN_EN
    assert first.state.node == "main"
    assert ops.names() == ["subscriber"]
    assert not first.ended


async def test_route_on_blocked_subscriber(menu: Menu) -> None:
    ops = ScriptedOperations({"subscriber": OperationResult("ok", {"status": "blocked"})})
    [first] = await walk(menu, [], ops)
    assert (first.screen.text, first.ended, first.screen.final) == ("Blocked.", True, True)


async def test_condition_shows_option_only_when_true(menu: Menu) -> None:
    ops = ScriptedOperations({"subscriber": OperationResult("ok", {"status": "vip"})})
    first, vip = await walk(menu, ["4"], ops)
    assert "4. VIP" in first.screen.text
    assert vip.state.node == "done"
    _, hidden = await walk(menu, ["4"], ScriptedOperations())
    assert (hidden.accepted, hidden.state.node) == (False, "main")


async def test_input_confirm_action_happy_path(menu: Menu, ops: ScriptedOperations) -> None:
    results = await walk(menu, ["1", "200", "1"], ops)
    assert [r.screen.text for r in results[1:]] == [
        "How many points?\n0. Back",
        "Use 200 points?\n1. Yes\n2. No\n0. Back",
        "Done. Balance 1050.",
    ]
    assert results[-1].ended
    assert ops.calls[-1] == ("redeem", {"reward_code": 200})
    assert [c.name for c in results[-1].operations] == ["redeem"]


async def test_action_branches_on_result_code(menu: Menu) -> None:
    ops = ScriptedOperations({"redeem": OperationResult("insufficient_points")})
    *_, last = await walk(menu, ["1", "200", "1"], ops)
    assert last.screen.text == "Not enough points."


async def test_unavailable_goes_to_the_try_later_node(menu: Menu) -> None:
    ops = ScriptedOperations({"redeem": OperationResult("unavailable")})
    *_, last = await walk(menu, ["1", "200", "1"], ops)
    assert (last.screen.text, last.ended) == ("Try later.", True)
    # Without a default branch, an unavailable operation still lands on `unavailable`.
    ops = ScriptedOperations({"subscriber": OperationResult("unavailable")})
    [first] = await walk(menu, [], ops)
    assert first.screen.text == "Try later."


async def test_confirm_no_goes_back_to_main(menu: Menu, ops: ScriptedOperations) -> None:
    *_, last = await walk(menu, ["1", "200", "2"], ops)
    assert last.state.node == "main"
    assert "redeem" not in ops.names()


async def test_invalid_input_shows_error_and_counts(menu: Menu, ops: ScriptedOperations) -> None:
    _, ask, bad1, bad2, bad3 = await walk(menu, ["1", "0x", "9999", "abc"], ops)
    assert bad1.screen.text == "1 to 500, please.\nHow many points?\n0. Back"
    assert (bad1.state.failures, bad2.state.failures) == (1, 2)
    assert not bad1.accepted
    # The third failure takes the input's own failure path.
    assert bad3.state.node == "done"
    assert bad3.ended
    assert ask.state.failures == 0


async def test_failures_without_failure_path_go_to_operator(
    menu: Menu, ops: ScriptedOperations
) -> None:
    *_, last = await walk(menu, ["3", "123", "456", "789"], ops)
    assert last.state.node == "operator"
    assert last.handoff_reason == "max_failures"
    assert last.screen.handoff is not None
    assert last.screen.handoff.destination == ""


async def test_menu_failures_reset_after_a_good_input(menu: Menu, ops: ScriptedOperations) -> None:
    results = await walk(menu, ["9", "9", "1", "0", "9"], ops)
    assert [r.state.failures for r in results] == [0, 1, 2, 0, 0, 1]
    assert (
        results[-1].screen.text
        == "Invalid.\nMain\n1. Points\n2. Shop\n3. Phone\n5. Russian\n6. Loop\n7. Operator"
    )


async def test_timeouts_count_then_go_to_operator(menu: Menu, ops: ScriptedOperations) -> None:
    _, once, twice = await walk(menu, [None, None], ops)
    assert (once.state.timeouts, once.screen.text) == (1, MAIN_EN)
    assert twice.handoff_reason == "max_timeouts"
    assert twice.screen.text == "Connecting."


async def test_back_and_home_navigation(menu: Menu, ops: ScriptedOperations) -> None:
    _, ask, confirm, back, back2, back3 = await walk(menu, ["1", "20", "0", "0", "0"], ops)
    assert confirm.state.breadcrumb == ["main", "ask_points"]
    assert back.state.node == "ask_points"
    assert back2.state.node == "main"
    assert back2.screen.text == MAIN_EN  # no back line on the first screen
    assert not back3.accepted  # nothing to go back to: an invalid input
    _, _, _, home = await walk(menu, ["1", "20", "00"], ops)
    assert (home.state.node, home.state.breadcrumb) == ("main", [])
    assert ask.state.breadcrumb == ["main"]


async def test_operator_option_and_reason(menu: Menu, ops: ScriptedOperations) -> None:
    _, handed = await walk(menu, ["7"], ops)
    assert (handed.handoff_reason, handed.ended) == ("asked", True)


async def test_route_loop_is_capped(menu: Menu, ops: ScriptedOperations) -> None:
    _, looped = await walk(menu, ["6"], ops)
    assert looped.handoff_reason == "step_limit"
    assert looped.state.node == "operator"
    assert MAX_STEPS_PER_HOP > 2


async def test_language_switch(menu: Menu, ops: ScriptedOperations) -> None:
    _, switched = await walk(menu, ["5"], ops)
    assert switched.state.language == "ru"
    assert switched.screen.text.startswith("Главное\n1. Баллы")
    assert ops.calls[-1] == ("set_language", {"language": "ru"})


async def test_list_pick_stores_item_fields(menu: Menu, ops: ScriptedOperations) -> None:
    _, shop, picked = await walk(menu, ["2", "2"], ops)
    assert (
        shop.screen.text
        == "Rewards:\n1. Награда 1 100\n2. Награда 2 200\n3. Награда 3 300\n0. Back"
    )
    assert picked.state.variables["code"] == "r2"
    assert picked.screen.text == "You chose Награда 2."
    assert ops.calls[1] == ("catalog", {"category": "telecom"})


async def test_list_pagination_renumbers_each_page(menu: Menu) -> None:
    ops = ScriptedOperations({"catalog": catalog(12, "Longer reward name")})
    _, first, second, third, back, pick = await walk(menu, ["2", "99", "99", "0", "1"], ops)
    assert first.screen.text.startswith("Rewards:\n1. Longer reward name 1 100\n")
    assert first.screen.text.endswith("\n99. More\n0. Back")
    assert second.screen.text.startswith("1. Longer reward name ")
    assert (second.state.page, third.state.page) == (1, 2)
    assert first.screen.pages >= 3
    assert back.state.page == 1
    assert pick.state.variables["title"] == second.screen.text.split("\n")[0][3:].rsplit(" ", 1)[0]
    for result in (first, second, third):
        assert len(result.screen.text) <= 182


async def test_empty_list(menu: Menu) -> None:
    ops = ScriptedOperations({"catalog": OperationResult("ok", {"items": []})})
    _, empty = await walk(menu, ["2"], ops)
    assert empty.screen.text == "Nothing here."


async def test_shortcut_walks_and_stops_at_confirmation(
    menu: Menu, ops: ScriptedOperations
) -> None:
    result = await menu.start("ussd", ops, shortcut=["1", "200", "1"])
    assert result.state.node == "confirm"  # never skips a confirmation
    assert "redeem" not in ops.names()
    assert result.screen.text.startswith("Use 200 points?")


async def test_shortcut_stops_at_first_rejected_input(menu: Menu, ops: ScriptedOperations) -> None:
    result = await menu.start("ussd", ops, shortcut=["1", "9999", "1"])
    assert result.state.node == "ask_points"
    assert result.screen.text.startswith("1 to 500, please.")
    assert menu.shortcut_inputs("*5*1*200#") == ["1", "200"]


async def test_ended_session_stays_ended(menu: Menu, ops: ScriptedOperations) -> None:
    _, done = await walk(menu, ["7"], ops)
    again = await menu.step(done.state, "1", ops)
    assert (again.ended, again.accepted, again.state.node) == (True, False, "operator")


async def test_state_round_trips_and_stays_small(menu: Menu, ops: ScriptedOperations) -> None:
    *_, confirm = await walk(menu, ["1", "200"], ops)
    data = confirm.state.to_dict()
    assert SessionState.from_dict(json.loads(json.dumps(data))) == confirm.state
    assert data == {
        "v": menu.version,
        "n": "confirm",
        "l": "en",
        "c": "ussd",
        "x": {"sub": {"status": "active", "language": "ru", "code": "ok"}, "points": 200},
        "b": ["main", "ask_points"],
    }
    assert len(json.dumps(data)) < 400


async def test_breadcrumb_is_bounded(menu: Menu, ops: ScriptedOperations) -> None:
    state = SessionState(menu.version, "ask_points", "en", "ussd", breadcrumb=["main"] * 20)
    result = await menu.step(state, "20", ops)
    assert result.state.node == "confirm"
    assert len(result.state.breadcrumb) == MAX_BREADCRUMB


async def test_home_starts_afresh(menu: Menu, ops: ScriptedOperations) -> None:
    """Back at the main menu (home), "back" leads nowhere: not into the last flow."""
    inputs = ["1", "20", "2"]  # main -> ask -> confirm -> "no" -> main
    *_, last = await walk(menu, inputs, ops)
    assert (last.state.node, last.state.breadcrumb) == ("main", [])
    assert "0. Back" not in last.screen.text


async def test_unknown_node_in_state_goes_to_operator(menu: Menu, ops: ScriptedOperations) -> None:
    state = SessionState(menu.version, "vanished", "en", "ussd")
    result = await menu.step(state, "1", ops)
    assert result.handoff_reason == "unknown_node"


async def test_caller_state_is_not_mutated(menu: Menu, ops: ScriptedOperations) -> None:
    [first] = await walk(menu, [], ops)
    before = first.state.to_dict()
    await menu.step(first.state, "1", ops)
    assert first.state.to_dict() == before


# ------------------------------------------------------------------------- IVR


async def test_ivr_prompts_hints_and_audio(menu: Menu, ops: ScriptedOperations) -> None:
    [first] = await walk(menu, [], ops, channel="ivr")
    screen = first.screen
    assert screen.prompts[0].audio == "main-en.wav"
    assert [p.text for p in screen.prompts[1:]] == [
        "For Points, press 1.",
        "For Shop, press 2.",
        "For Phone, press 3.",
        "For Russian, press 5.",
        "For Loop, press 6.",
    ]  # the USSD-only operator option is not read out
    assert screen.ivr is not None
    assert (screen.ivr.num_digits, screen.ivr.finish_on_key, screen.ivr.timeout) == (1, "", 7)
    assert (screen.ivr.voice, screen.ivr.language_code) == ("Polly.Joanna", "en-US")


async def test_ivr_input_hints_and_keys(menu: Menu, ops: ScriptedOperations) -> None:
    _, ask, repeat, back, operator = await walk(menu, ["1", "*", "#", "0"], ops, channel="ivr")
    assert ask.screen.ivr is not None
    assert (ask.screen.ivr.num_digits, ask.screen.ivr.finish_on_key) == (None, "#")
    assert repeat.screen == ask.screen  # * repeats
    assert back.state.node == "main"  # # goes back
    assert operator.handoff_reason == "caller_request"  # 0: operator from anywhere
    assert operator.screen.handoff is not None
    assert operator.screen.handoff.destination == "+70000000000"
    # Nothing more to collect, but still spoken in the caller's voice and language.
    assert operator.screen.ivr is not None
    assert operator.screen.ivr.num_digits is None
    assert operator.screen.ivr.language_code == "en-US"


async def test_ivr_list_pages_of_five(menu: Menu) -> None:
    ops = ScriptedOperations({"catalog": catalog(7, "Prize")})
    _, shop, more = await walk(menu, ["2", "9"], ops, channel="ivr")
    assert [p.text for p in shop.screen.prompts] == [
        "Rewards:",
        *(f"For Prize {i} {i * 100}, press {i}." for i in range(1, 6)),
        "For More, press 9.",
    ]
    assert [p.text for p in more.screen.prompts] == [
        "For Prize 6 600, press 1.",
        "For Prize 7 700, press 2.",
    ]


async def test_ivr_failures_use_ivr_limit(menu: Menu, ops: ScriptedOperations) -> None:
    _, bad, handed = await walk(menu, ["8", "8"], ops, channel="ivr")
    assert bad.screen.prompts[0].text == "Invalid."
    assert handed.handoff_reason == "max_failures"


def test_machine_is_compiled_once_per_version(menu: Menu, tmp_path: Path) -> None:
    assert set(menu.machine.states) == set(menu.nodes)
    again = load_menu(write(tmp_path, ENGINE_MENU), operations=OPERATIONS)
    assert again.version == menu.version
    assert again.machine is not menu.machine
