"""Generated menus of any size, for the scaling runs.

``generate(nodes)`` writes a valid menu file: ``menu`` nodes numbered from
``n0`` (the start), node ``i`` leading to ``7i+1 .. 7i+7`` (modulo the number
of nodes, so the first ones form a tree that reaches every node and the last
ones wrap around) and to the operator. Pressing ``1`` is therefore always a
valid move, whatever the depth of the session, and every hop is the same
menu-to-menu transition with a screen of the same size: only the size of
the menu and the depth change. No node runs an operation, so a hop costs the
engine, Redis and HTTP only.

``generate_chain(levels)`` writes the chain menu of the ``chain`` phase:
``c0 .. c{levels-1}``, each a menu whose ``1`` leads one level down, the last
to a final message: a subscriber walks one level per hop, ``text``
accumulating (``1*1*1...``), the same menu for the service and every run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ussd_service.dialogue import DIALOGUE_TEXTS
from ussd_service.menu_files import SMS_REPLIES

# Keys 1..7 lead down the tree; 8 leads to the operator (every node needs a
# path to a final screen); 9 is the IVR "more" key and stays free.
BRANCHING = 7
OPERATOR_KEY = "8"
# Nodes that are not part of the tree: the operator handoff and the outage message.
FIXED_NODES = ("operator", "try_later")

HEADER = {
    "version": 1,
    "languages": ["en", "ru"],
    "default_language": "en",
    "entry": {
        "ussd": {"code": "*111*455#", "start": "n0", "home": "n0"},
        "ivr": {"code": "0890", "start": "n0", "home": "n0"},
    },
    "operator": "operator",
    "unavailable": "try_later",
    "texts": {
        "more": {"en": "More", "ru": "More"},
        "back": {"en": "Back", "ru": "Back"},
        "yes": {"en": "Yes", "ru": "Yes"},
        "no": {"en": "No", "ru": "No"},
        "invalid_input": {"en": "Invalid choice.", "ru": "Invalid choice."},
        "ivr_option": {"en": "For {label}, press {key}.", "ru": "For {label}, press {key}."},
        "session_expired": {"en": "Session expired.", "ru": "Session expired."},
        "try_later": {"en": "Please try later.", "ru": "Please try later."},
        "resume_offer": {
            "en": "Continue where you left off?\n1. Yes\n2. Start again",
            "ru": "Continue where you left off?\n1. Yes\n2. Start again",
        },
        "service_unavailable": {"en": "Please try later.", "ru": "Please try later."},
    },
}


def _text(value: str) -> dict[str, str]:
    return {"en": value, "ru": value}


def menu_document(nodes: int) -> dict[str, object]:
    """The menu as a JSON-compatible document (YAML is a superset of JSON)."""
    tree = max(1, nodes - len(FIXED_NODES))
    body: dict[str, object] = {}
    for index in range(tree):
        # Children wrap around (mod the number of nodes): every node shows the
        # same options with labels of the same width, so every hop renders the
        # same amount of text whatever the size and the depth.
        options = [
            {
                "key": str(key),
                "label": _text(f"Go {(index * BRANCHING + key) % tree:05d}"),
                "target": f"n{(index * BRANCHING + key) % tree}",
            }
            for key in range(1, BRANCHING + 1)
        ]
        options.append({"key": OPERATOR_KEY, "label": _text("Operator"), "target": "operator"})
        body[f"n{index}"] = {"kind": "menu", "text": _text(f"Node {index:05d}"), "options": options}
    body["operator"] = {"kind": "operator", "text": _text("Connecting you to an operator.")}
    body["try_later"] = {"kind": "message", "text": _text("Please try later.")}
    texts = dict(HEADER["texts"])  # type: ignore[call-overload]
    for name in DIALOGUE_TEXTS:  # whatever else the service requires of every menu
        texts.setdefault(name, _text(name.replace("_", " ").capitalize() + "."))
    # The SMS desk's replies, plain (the bench sends no SMS, but the service loads them).
    replies = {name: _text(name.replace("_", " ").capitalize() + ".") for name in SMS_REPLIES}
    return {**HEADER, "texts": texts, "nodes": body, "sms": {"replies": replies}}


CHAIN_LEVELS = 10
CHAIN_TITLE = "Level"
CHAIN_DONE = "Chain done."


def chain_document(levels: int = CHAIN_LEVELS) -> dict[str, object]:
    """The chain menu as a JSON-compatible document."""
    body: dict[str, object] = {}
    for level in range(levels):
        target = f"c{level + 1}" if level + 1 < levels else "done"
        options = [
            {"key": "1", "label": _text("Next"), "target": target},
            {"key": OPERATOR_KEY, "label": _text("Operator"), "target": "operator"},
        ]
        text = _text(f"{CHAIN_TITLE} {level}")
        body[f"c{level}"] = {"kind": "menu", "text": text, "options": options}
    body["done"] = {"kind": "message", "text": _text(CHAIN_DONE)}
    document = menu_document(1)
    nodes = document["nodes"]
    assert isinstance(nodes, dict)
    body.update({name: nodes[name] for name in FIXED_NODES})
    entry = {"start": "c0", "home": "c0"}
    return {
        **document,
        "entry": {"ussd": {"code": "*111*455#", **entry}, "ivr": {"code": "0890", **entry}},
        "nodes": body,
    }


def generate_chain(path: Path, levels: int = CHAIN_LEVELS) -> Path:
    """Write the chain menu of ``levels`` levels to ``path``."""
    path.write_text(json.dumps(chain_document(levels), ensure_ascii=False, indent=1), "utf-8")
    return path


def generate(nodes: int, path: Path) -> Path:
    """Write a menu of ``nodes`` nodes to ``path``."""
    path.write_text(json.dumps(menu_document(nodes), ensure_ascii=False, indent=1), "utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("nodes", type=int)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    generate(args.nodes, args.output)


if __name__ == "__main__":
    main()
