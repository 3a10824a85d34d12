"""Flows as data: ``flows.yaml`` read into plain dicts the load generator can take as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

FLOWS_FILE = Path(__file__).with_name("flows.yaml")
KINDS = ("nav", "ledger", "handoff")
CHANNELS = ("ussd", "ivr")


class FlowError(ValueError):
    """The flows file is malformed; the message names the flow and step."""


def _expect(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise FlowError(f"{where}: expect must be a string or a list of strings")


def normalise_flow(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A checked flow: ``{name, channel, needs, steps: [{name, input, expect, end, kind}]}``."""
    channel = raw.get("channel", "ussd")
    if channel not in CHANNELS:
        raise FlowError(f"flow {name}: channel must be one of {CHANNELS}")
    steps = []
    for index, step in enumerate(raw.get("steps") or []):
        where = f"flow {name} step {index + 1}"
        kind = step.get("kind", "nav")
        if kind not in KINDS:
            raise FlowError(f"{where}: kind must be one of {KINDS}")
        value = step.get("input", "")
        steps.append(
            {
                "name": str(step.get("name", f"step{index + 1}")),
                "input": None if value is None else str(value),
                "expect": _expect(step.get("expect", ""), where),
                "end": step.get("end"),
                "kind": kind,
                "record": bool(step.get("record", True)),
            }
        )
    if not steps:
        raise FlowError(f"flow {name}: no steps")
    return {"name": name, "channel": channel, "needs": raw.get("needs"), "steps": steps}


def _interludes(raw: Any) -> list[dict[str, Any]]:
    out = []
    for index, item in enumerate(raw or []):
        where = f"interlude {index + 1}"
        if not isinstance(item, dict) or "input" not in item:
            raise FlowError(f"{where}: needs name, match and input")
        out.append(
            {
                "name": str(item.get("name", f"interlude{index + 1}")),
                "match": _expect(item.get("match", ""), where),
                "input": str(item["input"]),
            }
        )
    return out


def load_flows(path: Path = FLOWS_FILE) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``(flows by name, mixes)`` from the flows file; mixes are ``{mix: {flow: weight}}``.

    Every flow carries the file's ``interludes`` (screens answered on the way).
    """
    data = YAML(typ="safe").load(path.read_text("utf-8"))
    interludes = _interludes(data.get("interludes"))
    flows = {
        name: {**normalise_flow(name, raw), "interludes": interludes}
        for name, raw in (data.get("flows") or {}).items()
    }
    mixes: dict[str, Any] = {}
    for mix, weights in (data.get("mixes") or {}).items():
        for flow in weights:
            if flow not in flows:
                raise FlowError(f"mix {mix}: unknown flow {flow}")
        mixes[mix] = {flow: float(weight) for flow, weight in weights.items()}
    mixes["baseline"] = mixes.get(str(data.get("baseline_mix", "navigation")), {})
    return flows, mixes


def mix_flows(flows: dict[str, dict[str, Any]], weights: dict[str, float]) -> list[dict[str, Any]]:
    """The flows of one mix with their weights, ready for the load generator."""
    return [{**flows[name], "weight": weight} for name, weight in weights.items() if weight > 0]


def chain_flow(
    levels: int, title: str, done: str, interludes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The walk of the chain menu (``bench.menugen.chain_document``): open it, then ``1``
    at every level, one level per hop, down to the final message."""
    steps = [{"input": "", "expect": f"{title} 0", "end": False}]
    steps += [
        {"input": "1", "expect": f"{title} {level}", "end": False} for level in range(1, levels)
    ]
    steps.append({"input": "1", "expect": done, "end": True})
    raw = {"channel": "ussd", "steps": [dict(s, name=f"level{i}") for i, s in enumerate(steps)]}
    return {**normalise_flow("chain", raw), "interludes": interludes, "weight": 1.0}
