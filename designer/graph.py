"""``ussd-service graph``: the menu tree as Mermaid, Graphviz DOT or SVG, per channel.

Node kinds have their own shapes; final nodes (messages) have a double border,
operator nodes are filled red. Edges carry the key or the result code that
takes them. Options limited to another channel are left out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from menus import MenuError
from menus.model import MenuFile
from ussd_service.menu_files import load_menus

DOT_PROGRAM = "dot"
DOT_TIMEOUT_S = 60.0
EXIT_NO_DOT = 2
MAX_LABEL = 40
# Mermaid shape delimiters per node kind (flowchart syntax).
MERMAID_SHAPES: dict[str, tuple[str, str]] = {
    "menu": ("[", "]"),
    "input": ("[/", "/]"),
    "confirm": ("{", "}"),
    "action": ("[[", "]]"),
    "list": ("[(", ")]"),
    "route": ("{{", "}}"),
    "message": ("([", "])"),
    "operator": ("((", "))"),
}
# Graphviz shape per node kind.
DOT_SHAPES: dict[str, str] = {
    "menu": "box",
    "input": "parallelogram",
    "confirm": "diamond",
    "action": "box3d",
    "list": "cylinder",
    "route": "hexagon",
    "message": "oval",
    "operator": "doubleoctagon",
}
ENTRY_ID = "__entry__"
# Words Mermaid reads as keywords; node ids equal to one get a prefix.
MERMAID_RESERVED = frozenset(
    {"end", "graph", "flowchart", "subgraph", "class", "classdef", "style", "click", "linkstyle"}
)


def mermaid_id(node_id: str) -> str:
    """A node id Mermaid cannot mistake for a keyword."""
    return f"node_{node_id}" if node_id.lower() in MERMAID_RESERVED else node_id


@dataclass(frozen=True)
class Edge:
    """From one node to another, with what takes it."""

    source: str
    target: str
    label: str


def _title(model: MenuFile, node: object, language: str) -> str:
    text = getattr(node, "text", None)
    if isinstance(text, str):
        text = model.texts.get(text, text)
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    value = getattr(text, language, None)
    if value is None:
        extra = getattr(text, "model_extra", None) or {}
        value = extra.get(language, "")
    return str(value or "")


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= MAX_LABEL else one_line[: MAX_LABEL - 1] + "…"


def edges(model: MenuFile, channel: str) -> Iterator[Edge]:
    """Every way out of every node on ``channel`` that the menu file names.

    The edges come from the menu model (each node kind says its own); the
    menu-wide ones (too many failures -> operator, backend unavailable) are
    left out, as they would connect every node.
    """
    for node_id, ways in model.graph().items():
        for way in ways:
            if way.implicit or (way.channels is not None and channel not in way.channels):
                continue
            label = way.label if way.when in (None, way.label) else f"{way.label} if {way.when}"
            yield Edge(node_id, way.target, label)


def _kind(node: object) -> str:
    return str(getattr(node, "kind", "menu"))


def _entry(model: MenuFile, channel: str) -> tuple[str, str] | None:
    point = getattr(model.entry, channel, None)
    if point is None:
        return None
    return str(point.code), str(point.start)


def _reachable(model: MenuFile, channel: str) -> set[str]:
    entry = _entry(model, channel)
    if entry is None:
        return set()
    out: dict[str, list[str]] = {}
    for edge in edges(model, channel):
        out.setdefault(edge.source, []).append(edge.target)
    seen, todo = set(), [entry[1]]
    if model.operator:
        todo.append(model.operator)
    if model.unavailable:
        todo.append(model.unavailable)
    while todo:
        node = todo.pop()
        if node in seen or node not in model.nodes:
            continue
        seen.add(node)
        todo.extend(out.get(node, []))
    return seen


def _mermaid_text(text: str) -> str:
    # Inside "...": quotes become #quot; and nothing else needs escaping.
    return text.replace('"', "#quot;")


def to_mermaid(model: MenuFile, channel: str, language: str) -> str:
    """A Mermaid ``flowchart TD`` of the tree on ``channel``."""
    nodes = _reachable(model, channel)
    lines = ["flowchart TD"]
    entry = _entry(model, channel)
    if entry is not None:
        lines.append(f'    {ENTRY_ID}(["{_mermaid_text(entry[0])}"])')
    for node_id in sorted(nodes):
        node = model.nodes[node_id]
        kind = _kind(node)
        left, right = MERMAID_SHAPES.get(kind, ("[", "]"))
        title = _short(_title(model, node, language))
        label = f"{node_id}<br/><i>{kind}</i>" + (f"<br/>{title}" if title else "")
        lines.append(f'    {mermaid_id(node_id)}{left}"{_mermaid_text(label)}"{right}')
    if entry is not None:
        lines.append(f"    {ENTRY_ID} --> {mermaid_id(entry[1])}")
    for edge in edges(model, channel):
        if edge.source in nodes and edge.target in nodes:
            source, target = mermaid_id(edge.source), mermaid_id(edge.target)
            lines.append(f'    {source} -->|"{_mermaid_text(edge.label)}"| {target}')
    finals = sorted(n for n in nodes if _kind(model.nodes[n]) == "message")
    operators = sorted(n for n in nodes if _kind(model.nodes[n]) == "operator")
    lines.append("    classDef final stroke-width:3px,stroke:#2a7;")
    lines.append("    classDef operator fill:#f88,stroke:#a00,stroke-width:3px;")
    if finals:
        lines.append(f"    class {','.join(map(mermaid_id, finals))} final;")
    if operators:
        lines.append(f"    class {','.join(map(mermaid_id, operators))} operator;")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(model: MenuFile, channel: str, language: str) -> str:
    """A Graphviz digraph of the tree on ``channel``."""
    nodes = _reachable(model, channel)
    lines = [
        f"digraph {_dot_string('menu_' + channel)} {{",
        "    rankdir=TB;",
        '    node [fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    entry = _entry(model, channel)
    if entry is not None:
        lines.append(f"    {_dot_string(ENTRY_ID)} [label={_dot_string(entry[0])}, shape=circle];")
    for node_id in sorted(nodes):
        node = model.nodes[node_id]
        kind = _kind(node)
        title = _short(_title(model, node, language))
        label = f"{node_id}\n({kind})" + (f"\n{title}" if title else "")
        attrs = [f"label={_dot_string(label)}", f"shape={DOT_SHAPES.get(kind, 'box')}"]
        if kind == "message":
            attrs.append("peripheries=2")
        if kind == "operator":
            attrs += ["style=filled", 'fillcolor="#ff8888"', "peripheries=2"]
        lines.append(f"    {_dot_string(node_id)} [{', '.join(attrs)}];")
    if entry is not None:
        lines.append(f"    {_dot_string(ENTRY_ID)} -> {_dot_string(entry[1])};")
    for edge in edges(model, channel):
        if edge.source in nodes and edge.target in nodes:
            lines.append(
                f"    {_dot_string(edge.source)} -> {_dot_string(edge.target)} "
                f"[label={_dot_string(edge.label)}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> str | None:
    """The path of Graphviz ``dot``, or None."""
    return shutil.which(DOT_PROGRAM)


def render_svg(dot_source: str, program: str) -> str:
    """SVG from DOT via the ``dot`` program (raises CalledProcessError)."""
    result = subprocess.run(
        [program, "-Tsvg"],
        input=dot_source,
        capture_output=True,
        text=True,
        check=True,
        timeout=DOT_TIMEOUT_S,
    )
    return result.stdout


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
)
@click.option("--channel", type=click.Choice(["ussd", "ivr"]), default="ussd", show_default=True)
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path("menu_definitions.yaml"),
    show_default=True,
)
@click.option("--lang", help="Language of the node titles (default: the menu's default).")
def graph(fmt: str, channel: str, menu_file: Path, lang: str | None) -> None:
    """Draw the menu tree (Mermaid, Graphviz DOT, or SVG through dot)."""
    try:
        model = load_menus(menu_file).current.model
    except MenuError as exc:
        raise click.ClickException(f"{menu_file}: the menu does not load: {exc}") from None
    language = lang or model.default_language
    if fmt == "mermaid":
        click.echo(to_mermaid(model, channel, language), nl=False)
        return
    source = to_dot(model, channel, language)
    if fmt == "dot":
        click.echo(source, nl=False)
        return
    program = dot_available()
    if program is None:
        click.echo(
            "graph: --format svg needs the Graphviz 'dot' program, which is not installed "
            "(e.g. apt-get install graphviz); --format dot prints the source instead.",
            err=True,
        )
        sys.exit(EXIT_NO_DOT)
    try:
        click.echo(render_svg(source, program), nl=False)
    except subprocess.CalledProcessError as exc:
        raise click.ClickException(f"dot failed: {exc.stderr.strip()}") from None
