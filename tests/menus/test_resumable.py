"""Which screens a dropped USSD session may be resumed at: where something was
being typed or confirmed, never a screen that only showed something."""

from __future__ import annotations

from menus import KINDS, Menu


def test_inputs_and_confirmations_are_resumable(default_menu: Menu) -> None:
    resumable = {node_id for node_id in default_menu.nodes if default_menu.resumable(node_id)}
    kinds = {default_menu.nodes[node_id].kind for node_id in resumable}
    assert kinds == {"input", "confirm"}
    assert {"gift_recipient", "gift_amount", "gift_confirm", "redeem_confirm"} <= resumable


def test_read_only_and_final_screens_are_not(default_menu: Menu) -> None:
    for node_id in ("main", "balance", "balance_expiring", "history", "spend", "operator"):
        assert not default_menu.resumable(node_id), node_id
    assert not default_menu.resumable("no_such_node")
    assert {name for name, kind in KINDS.items() if kind.resumable} == {"input", "confirm"}
