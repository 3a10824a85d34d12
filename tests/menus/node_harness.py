"""Golden data of the node kinds: one YAML file per kind in ``menus/nodes/testdata``.

A file holds ``cases``; each case is a menu fragment (``nodes``, and optionally
``languages``, ``variables``, ``texts``) placed into a small base file that
has the engine's texts, an ``operator`` node and an ``unavailable`` node
(``later``). Sessions start at the fragment's first node (or ``start``).

A case then expects either diagnostics (``errors``: the validator's findings
without file positions) or, per channel (``ussd``, ``ivr``), a conversation:
the first entry is the start screen, every later entry has the ``input`` that
led to it (null: a timeout). A case may also list the ``edges`` of its nodes.
``answers`` scripts the backend: operation name -> ``{code, data}`` (or a list
of them, one per call); operations not listed answer ``ok`` with no data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from menu_harness import OPERATIONS
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

import menus.nodes
from menus import Menu, OperationResult, StepResult, validate_text
from menus.errors import Diagnostic

# Next to the kinds of the menus package imported (test_new_kind runs on a copy).
TESTDATA = Path(menus.nodes.__file__).parent / "testdata"
CHANNELS = ("ussd", "ivr")

_ENGINE_TEXTS = {
    "more": {"en": "More", "ru": "Ещё"},
    "back": {"en": "Back", "ru": "Назад"},
    "yes": {"en": "Yes", "ru": "Да"},
    "no": {"en": "No", "ru": "Нет"},
    "invalid_input": {"en": "Invalid.", "ru": "Ошибка."},
    "ivr_option": {"en": "For {label}, press {key}.", "ru": "{label} — нажмите {key}."},
}
_BASE_NODES = {
    "operator": {"kind": "operator", "text": {"en": "Operator", "ru": "Оператор"}},
    "later": {"kind": "message", "text": {"en": "Later", "ru": "Позже"}},
}


def yaml() -> YAML:
    out = YAML(typ="rt")
    out.width = 4096  # one conversation step per line
    out.preserve_quotes = True
    out.indent(mapping=2, sequence=4, offset=2)
    return out


def kind_files() -> dict[str, Path]:
    """Golden data per kind name (the file's stem)."""
    return {path.stem: path for path in sorted(TESTDATA.glob("*.yaml"))}


def load_cases(path: Path) -> Any:
    return yaml().load(path.read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def menu_document(case: Mapping[str, Any]) -> dict[str, Any]:
    """The whole menu file of a case, as plain data."""
    languages = list(case.get("languages", ["en"]))
    nodes = _plain(case["nodes"])
    start = case.get("start", next(iter(nodes)))
    texts = {
        name: {lang: value for lang, value in words.items() if lang in languages}
        for name, words in _ENGINE_TEXTS.items()
    }
    texts.update(_plain(case.get("texts", {})))
    base_nodes = {
        node_id: {
            **node,
            "text": {lang: value for lang, value in node["text"].items() if lang in languages},
        }
        for node_id, node in _BASE_NODES.items()
    }
    return {
        "version": 1,
        "languages": languages,
        "default_language": languages[0],
        "entry": {
            "ussd": {"code": "*5#", "start": start, "home": start},
            "ivr": {"code": "0890", "start": start, "home": start},
        },
        "channels": {"ivr": {"operator_destination": "+70000000000"}},
        "operator": "operator",
        "unavailable": "later",
        "variables": _plain(case.get("variables", {})),
        "texts": texts,
        "nodes": {**base_nodes, **nodes},
    }


def check(case: Mapping[str, Any]) -> tuple[Any, list[Diagnostic]]:
    """Validate the case's menu (JSON is YAML)."""
    return validate_text(
        json.dumps(menu_document(case), ensure_ascii=False), "case.yaml", operations=OPERATIONS
    )


def finding(diagnostic: Diagnostic) -> str:
    """A diagnostic without its file position (the file is generated)."""
    where = f"node '{diagnostic.node}': " if diagnostic.node else ""
    return f"{diagnostic.level}: {where}{diagnostic.message}"


class Answers:
    """The backend of a case: scripted results, ``ok`` for anything else."""

    def __init__(self, script: Mapping[str, Any]) -> None:
        self.script = {name: _plain(value) for name, value in script.items()}

    def __call__(self, name: str) -> OperationResult:
        answer = self.script.get(name, {"code": "ok"})
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return OperationResult(answer["code"], answer.get("data", {}))


def screen(result: StepResult) -> dict[str, Any]:
    """What a conversation step shows, as in the golden files."""
    shown = result.screen
    out: dict[str, Any] = {"node": shown.node}
    if shown.ivr is not None:
        out["say"] = [p.audio or p.text for p in shown.prompts]
        if shown.ivr.num_digits is not None:
            out["digits"] = shown.ivr.num_digits
    else:
        out["text"] = shown.text
    if shown.final:
        out["final"] = True
    if shown.handoff:
        out["handoff"] = shown.handoff.reason
    if result.operations:
        out["ran"] = [f"{call.name} {call.code}" for call in result.operations]
    if not result.accepted:
        out["accepted"] = False
    return out


def edge_lines(menu: Menu, node_id: str) -> list[str]:
    """A node's edges as ``label -> target`` lines, with condition, channels and kind."""
    lines = []
    for edge in menu.edges(node_id):
        line = f"{edge.label} -> {edge.target}"
        if edge.when is not None and edge.when != edge.label:
            line += f" if {edge.when}"
        if edge.channels is not None:
            line += f" on {','.join(edge.channels)}"
        if edge.implicit:
            line += " (menu-wide)"
        lines.append(line)
    return lines


def _quoted(item: Any) -> Any:
    if isinstance(item, str):
        return DoubleQuotedScalarString(item)
    if isinstance(item, list):
        seq = CommentedSeq(_quoted(v) for v in item)
        seq.fa.set_flow_style()
        return seq
    return item


def steps(value: Any) -> CommentedSeq:
    """A conversation as flow-style steps with double-quoted texts (for UPDATE_GOLDEN)."""
    out = CommentedSeq()
    for step in value:
        entry = CommentedMap()
        for key, item in step.items():
            entry[key] = _quoted(item)
        entry.fa.set_flow_style()
        out.append(entry)
    return out
