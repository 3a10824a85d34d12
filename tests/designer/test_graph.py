"""``graph``: Mermaid that parses, DOT that renders (or is well-formed when dot is missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from designer.graph import (
    DOT_SHAPES,
    EXIT_NO_DOT,
    MERMAID_SHAPES,
    graph,
    mermaid_id,
    to_dot,
    to_mermaid,
)
from ussd_service.menu_files import load_menus

MENU = Path(__file__).resolve().parents[2] / "menu_definitions.yaml"
_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_LABEL = r'"[^"]*"'


def check_mermaid(source: str) -> dict[str, str]:
    """A small checker of the flowchart subset graph emits; returns node id -> shape.

    Raises AssertionError naming the first line that is not valid Mermaid.
    """
    lines = source.splitlines()
    assert lines[0] == "flowchart TD", lines[0]
    shapes = "|".join(
        f"(?P<s{i}>{re.escape(left)}{_LABEL}{re.escape(right)})"
        for i, (left, right) in enumerate(MERMAID_SHAPES.values())
    )
    node_re = re.compile(rf"^    (?P<id>{_ID})(?:{shapes})$")
    edge_re = re.compile(rf"^    (?P<a>{_ID}) -->(?:\|{_LABEL}\|)? (?P<b>{_ID})$")
    classdef_re = re.compile(rf"^    classDef {_ID} [a-z-]+:[^;\s]+(?:,[a-z-]+:[^;\s]+)*;$")
    class_re = re.compile(rf"^    class {_ID}(?:,{_ID})* {_ID};$")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    kinds = list(MERMAID_SHAPES)
    for number, line in enumerate(lines[1:], start=2):
        if match := node_re.match(line):
            assert match["id"].lower() != "end", f"line {number}: 'end' is a Mermaid keyword"
            shape = next(i for i in range(len(kinds)) if match[f"s{i}"])
            nodes[match["id"]] = kinds[shape]
        elif match := edge_re.match(line):
            edges.append((match["a"], match["b"]))
        elif classdef_re.match(line) or class_re.match(line):
            continue
        else:
            raise AssertionError(f"line {number} is not valid Mermaid: {line!r}")
    for a, b in edges:
        assert a in nodes, f"edge from undefined node {a}"
        assert b in nodes, f"edge to undefined node {b}"
    return nodes


def check_dot(source: str) -> dict[str, str]:
    """Structure of the DOT graph emits; returns node id -> shape."""
    lines = source.strip().splitlines()
    assert re.fullmatch(r'digraph "[^"]+" \{', lines[0]), lines[0]
    assert lines[-1] == "}"
    string = r'"(?:[^"\\]|\\.)*"'
    node_re = re.compile(rf"^    (?P<id>{string}) \[(?P<attrs>.*)\];$")
    edge_re = re.compile(rf"^    {string} -> {string}(?: \[label={string}\])?;$")
    nodes: dict[str, str] = {}
    for line in lines[1:-1]:
        if line.strip() in {"rankdir=TB;"} or re.match(r"^    (node|edge) \[.*\];$", line):
            continue
        if match := node_re.match(line):
            shape = re.search(r"shape=(\w+)", match["attrs"])
            nodes[match["id"].strip('"')] = shape[1] if shape else "box"
        else:
            assert edge_re.match(line), f"not a DOT statement: {line!r}"
    return nodes


def test_mermaid_of_the_default_menu_parses_with_shapes_per_kind() -> None:
    model = load_menus(MENU).current.model
    nodes = check_mermaid(to_mermaid(model, "ussd", "ru"))
    assert nodes["main"] == "menu"
    assert nodes["gift_recipient"] == "input"
    assert nodes["gift_confirm"] == "confirm"
    assert nodes["gift_run"] == "action"
    assert nodes["pending"] == "list"
    assert nodes["by_status"] == "route"
    assert nodes["gift_sent"] == "message"
    assert nodes["operator"] == "operator"
    source = to_mermaid(model, "ussd", "ru")
    assert "class operator operator;" in source
    assert re.search(r"class [\w,]*gift_sent[\w,]* final;", source)
    assert 'main -->|"7"| operator' in source


def test_ivr_graph_leaves_out_ussd_only_options() -> None:
    model = load_menus(MENU).current.model
    ussd = to_mermaid(model, "ussd", "en")
    ivr = to_mermaid(model, "ivr", "en")
    check_mermaid(ivr)
    assert 'main -->|"7"| operator' in ussd
    assert 'main -->|"7"|' not in ivr
    assert '__entry__(["0890"])' in ivr


def test_reserved_mermaid_words_are_escaped() -> None:
    assert mermaid_id("end") == "node_end"
    assert mermaid_id("main") == "main"


def test_dot_is_well_formed_and_renders_when_dot_is_installed() -> None:
    source = to_dot(load_menus(MENU).current.model, "ussd", "ru")
    nodes = check_dot(source)
    assert nodes["operator"] == DOT_SHAPES["operator"]
    assert nodes["gift_confirm"] == DOT_SHAPES["confirm"]
    assert "peripheries=2" in source
    if shutil.which("dot"):
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=True
        ).stdout
        assert "<svg" in svg
        assert "gift_confirm" in svg


def test_svg_command_renders_or_says_dot_is_missing() -> None:
    result = CliRunner().invoke(graph, ["--format", "svg", "--menu", str(MENU)])
    if shutil.which("dot"):
        assert result.exit_code == 0, result.output
        assert "<svg" in result.output
    else:
        assert result.exit_code == EXIT_NO_DOT
        assert "needs the Graphviz 'dot' program" in result.output


def test_svg_without_dot_exits_2(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(graph, ["--format", "svg", "--menu", str(MENU)])
    assert result.exit_code == EXIT_NO_DOT
    assert "needs the Graphviz 'dot' program" in result.output


def test_mermaid_and_dot_commands() -> None:
    runner = CliRunner()
    mermaid = runner.invoke(graph, ["--menu", str(MENU), "--channel", "ivr"])
    assert mermaid.exit_code == 0
    check_mermaid(mermaid.output)
    dot = runner.invoke(graph, ["--menu", str(MENU), "--format", "dot"])
    assert dot.exit_code == 0
    check_dot(dot.output)
