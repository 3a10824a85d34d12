"""The engine: a menu version compiled once into a ``transitions`` machine, stepped per hop.

States are node ids. Transitions come from the nodes' edges (options guarded
by their conditions, input/confirm/list outcomes, operation result codes,
route conditions) and menu-wide navigation (home, operator, failure,
unavailable). A hop never binds a model to the machine (``Machine.add_model``
costs O(states + events) per call); it fires the machine's ``Event`` objects
directly on a throwaway three-slot object (``HopModel``), which costs O(1) in menu size (see
``bench``).

A hop is a ``Turn`` (``turn_start``, ``turn_step``, ``turn_show``): the engine
pauses at each operation a node needs and the caller runs it, never inside
transitions callbacks: the machine only decides where to go. ``start``,
``step`` and ``show`` drive a turn with an ``Operations`` object.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from transitions import Machine

from menus import limits
from menus.compiled import CompiledText, compile_text, resolve
from menus.errors import Diagnostic
from menus.expr import Expression, parse
from menus.fields import Channel, Text
from menus.hop import REASON_UNKNOWN_NODE, Hop
from menus.model import IvrSettings, MenuFile, Node, UssdSettings
from menus.nodes import Edge
from menus.operations import (
    NO_OPERATIONS,
    OperationResult,
    Operations,
    OperationTable,
    PendingOperation,
)
from menus.screen import PageLimits
from menus.state import OperationCall, SessionState, StepResult
from menus.turn import Turn, drive

_Steps = Generator[PendingOperation, OperationResult, StepResult]


class Menu:
    """One loaded menu version: the validated model, its parsed texts and its machine.

    ``operations`` is the operation table the menu was validated against; it
    says which operations change data (``PendingOperation.mutating``).
    """

    def __init__(
        self,
        model: MenuFile,
        version: str,
        source: str = "",
        operations: OperationTable = NO_OPERATIONS,
    ) -> None:
        self.model = model
        self.version = version
        self.source = source
        self.operations = operations
        self.nodes: Mapping[str, Node] = model.nodes
        self.texts: dict[str, CompiledText] = {
            name: compile_text(local, name) for name, local in model.texts.items()
        }
        self._inline: dict[int, CompiledText] = {}
        self.conditions: dict[tuple[str, int], Expression] = {}
        self.regexes: dict[str, re.Pattern[str]] = {}
        self.warnings: list[Diagnostic] = []
        self._page_limits: dict[str, PageLimits] = {}
        self._graph = model.graph()
        self.machine = self._compile()
        self.events = self.machine.events

    # ----------------------------------------------------------------- compile

    def text(self, text: Text) -> CompiledText:
        """The compiled form of a text field (a reusable name or an inline text)."""
        if isinstance(text, str):
            return self.texts[text]
        compiled = self._inline.get(id(text))
        if compiled is None:
            name, local = resolve(text, self.model.texts)
            assert local is not None
            compiled = self._inline[id(text)] = compile_text(local, name)
        return compiled

    def condition(self, node_id: str, index: int, source: str | None) -> Expression | None:
        """Parse the condition of edge ``index`` of ``node_id`` once; None when there is none."""
        if source is None:
            return None
        condition = self.conditions[(node_id, index)] = parse(source)
        return condition

    def edges(self, node_id: str) -> tuple[Edge, ...]:
        """The edges leaving ``node_id`` (labelled, in order); KeyError for an unknown node."""
        return self._graph[node_id]

    def _compile(self) -> Machine:
        model = self.model
        machine = Machine(
            model=None,
            states=list(self.nodes),
            initial=model.entry.ussd.start,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=True,
        )
        add = machine.add_transition
        for node_id, node in self.nodes.items():
            node.compile(node_id, self, add)
        add("home_ussd", "*", model.entry.ussd.home)
        if model.entry.ivr:
            add("home_ivr", "*", model.entry.ivr.home)
        add("operator", "*", model.operator)
        add("failure", "*", model.operator)
        add("unavailable", "*", model.unavailable)
        return machine

    # ---------------------------------------------------------------- the hops

    def new_state(self, channel: Channel, language: str | None = None) -> SessionState:
        """A session at the channel's start node, before any step."""
        entry = self.model.entry.ivr if channel == "ivr" else self.model.entry.ussd
        if entry is None:
            raise ValueError(f"this menu has no {channel} entry point")
        chosen = language if language in self.model.languages else self.model.default_language
        assert chosen is not None
        return SessionState(self.version, entry.start, chosen, channel)

    def turn_start(
        self,
        channel: Channel,
        language: str | None = None,
        shortcut: Sequence[str] = (),
        variables: Mapping[str, Any] | None = None,
    ) -> Turn:
        """Begin a session; ``shortcut`` inputs (from ``*111*455*3*...#``) are walked at once.

        The walk stops at the first screen that rejects an input, at any
        confirmation (never skipped), or when the session ends.
        """
        state = self.new_state(channel, language)
        state.variables.update(variables or {})
        return Turn(self._start(state, list(shortcut)[: limits.MAX_SHORTCUT_INPUTS]))

    def turn_step(self, state: SessionState, user_input: str | None) -> Turn:
        """One hop: ``user_input`` is the subscriber's keys, or None when the input timed out.

        ``state`` must be of this version (``MenuRegistry.get(state.version)``);
        the caller's ``state`` is never changed (the result holds a new one).
        """
        if state.version != self.version:
            raise ValueError(f"session of menu version {state.version}, not {self.version}")
        return Turn(self._step(state, user_input))

    def turn_show(self, state: SessionState) -> Turn:
        """Render the session's current screen again without taking input.

        Used to resume a dropped session: nothing is stepped, so no operation
        of an action node runs again (a list node reloads its read-only items).
        """
        return Turn(self._show(state))

    async def start(
        self,
        channel: Channel,
        ops: Operations,
        language: str | None = None,
        shortcut: Sequence[str] = (),
        variables: Mapping[str, Any] | None = None,
    ) -> StepResult:
        """``turn_start`` driven to its end with ``ops`` running the operations."""
        return await drive(self.turn_start(channel, language, shortcut, variables), ops)

    async def show(self, state: SessionState, ops: Operations) -> StepResult:
        """``turn_show`` driven to its end with ``ops`` running the operations."""
        return await drive(self.turn_show(state), ops)

    async def step(
        self, state: SessionState, user_input: str | None, ops: Operations
    ) -> StepResult:
        """``turn_step`` driven to its end with ``ops`` running the operations."""
        return await drive(self.turn_step(state, user_input), ops)

    def _start(self, state: SessionState, shortcut: list[str]) -> _Steps:
        hop = Hop(self, state)
        yield from hop.settle()
        result = yield from hop.finish(accepted=True)
        calls: list[OperationCall] = list(result.operations)
        for value in shortcut:
            if result.ended or self.nodes[result.state.node].stops_shortcut:
                break
            result = yield from self._step(result.state, value)
            calls.extend(result.operations)
            if not result.accepted:
                break
        return replace(result, operations=tuple(calls))

    def _show(self, state: SessionState) -> _Steps:
        hop = Hop(self, state.copy())
        if state.node not in self.nodes:
            return (yield from hop.jump(self.model.operator, REASON_UNKNOWN_NODE))
        return (yield from hop.finish(accepted=True))

    def _step(self, state: SessionState, user_input: str | None) -> _Steps:
        hop = Hop(self, state.copy())
        if state.ended:
            return (yield from hop.finish(accepted=False))
        if state.node not in self.nodes:
            return (yield from hop.jump(self.model.operator, REASON_UNKNOWN_NODE))
        if user_input is None:
            return (yield from hop.timeout())
        return (yield from hop.handle(user_input.strip()))

    # ------------------------------------------------------------------ facts

    def home(self, channel: Channel) -> str:
        """The node "home" leads to on ``channel`` (the main menu)."""
        entry = self.model.entry.ivr if channel == "ivr" else self.model.entry.ussd
        return (entry or self.model.entry.ussd).home

    def resumable(self, node_id: str) -> bool:
        """True when a session dropped at ``node_id`` is worth resuming (an input, a
        confirmation): never after a final screen or one that only showed something."""
        node = self.nodes.get(node_id)
        return node is not None and node.resumable

    def masks_input(self, node_id: str) -> bool:
        """True when input at ``node_id`` is secret (a PIN): show ``****`` instead of the keys."""
        node = self.nodes.get(node_id)
        return node is not None and node.masks_input()

    def shortcut_inputs(self, dialed: str) -> list[str] | None:
        """Inputs after the USSD service code (``*111*455*3*100#`` -> ["3", "100"]).

        None when ``dialed`` is not this menu's service code at all.
        """
        return parse_shortcut(dialed, self.model.entry.ussd.code)

    def settings_for(self, channel: Channel) -> UssdSettings | IvrSettings:
        """The channel's settings block."""
        return self.model.channels.ivr if channel == "ivr" else self.model.channels.ussd

    def page_limits(self, language: str) -> PageLimits:
        """USSD page limits with the navigation lines in ``language`` (cached)."""
        cached = self._page_limits.get(language)
        if cached is not None:
            return cached
        ussd = self.model.channels.ussd
        more = self.texts["more"].render(language, {})
        back = self.texts["back"].render(language, {})
        page = self._page_limits[language] = PageLimits(
            max_gsm7=ussd.max_gsm7,
            max_ucs2=ussd.max_ucs2,
            more_line=f"{ussd.navigation.more}. {more}",
            back_line=f"{ussd.navigation.back}. {back}",
            max_entries=limits.MAX_OPTIONS_PER_PAGE,
            error_line=self.texts["invalid_input"].render(language, {}),
        )
        return page


def parse_shortcut(dialed: str, service_code: str) -> list[str] | None:
    """The inputs a dialled USSD string carries after ``service_code``, or None."""
    text = "".join(dialed.split())
    base = service_code.rstrip("#")
    if text in (base, service_code):
        return []
    if not (text.startswith(base + "*") and text.endswith("#")):
        return None
    parts = text[len(base) + 1 : -1].split("*")
    return [part for part in parts if part][: limits.MAX_SHORTCUT_INPUTS]


__all__ = ["Menu", "OperationCall", "SessionState", "StepResult", "Turn", "parse_shortcut"]
