"""The engine: a menu version compiled once into a ``transitions`` machine, stepped per hop.

States are node ids. Transitions come from menu options (guarded by their
conditions), input/confirm/list outcomes, operation result codes, route
conditions, and navigation (home, operator, failure, unavailable). A hop
never binds a model to the machine (``Machine.add_model`` costs O(states +
events) per call); it fires the machine's ``Event`` objects directly on a
throwaway two-slot object, which costs O(1) in menu size (see ``bench``).

Operations run between transitions, awaited by the engine, never inside
transitions callbacks: the machine only decides where to go.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import phonenumbers
from transitions import EventData, Machine

from menus import limits
from menus.compiled import CompiledText, compile_text, resolve
from menus.errors import Diagnostic
from menus.expr import Expression, lookup, parse
from menus.model import (
    FINAL_KINDS,
    ActionNode,
    ArgValue,
    Channel,
    ConfirmNode,
    InputNode,
    IntegerValidator,
    IvrNavigation,
    IvrSettings,
    ListNode,
    MenuFile,
    MenuNode,
    Node,
    OperatorNode,
    PhoneValidator,
    PinValidator,
    RegexValidator,
    RouteNode,
    Text,
    UssdNavigation,
    UssdSettings,
)
from menus.operations import OK, OperationResult, Operations
from menus.screen import Handoff, IvrHints, Page, PageLimits, Prompt, Screen, paginate

CONFIRM_YES = "1"
CONFIRM_NO = "2"
REASON_CALLER = "caller_request"
REASON_FAILURES = "max_failures"
REASON_TIMEOUTS = "max_timeouts"
REASON_STEP_LIMIT = "step_limit"
REASON_UNKNOWN_NODE = "unknown_node"


@dataclass
class SessionState:
    """Where a session is: small and JSON-serialisable (``to_dict`` / ``from_dict``)."""

    version: str
    node: str
    language: str
    channel: Channel
    variables: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    timeouts: int = 0
    breadcrumb: list[str] = field(default_factory=list)
    page: int = 0
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A compact dict (short keys, defaults left out) for storage."""
        out: dict[str, Any] = {
            "v": self.version,
            "n": self.node,
            "l": self.language,
            "c": self.channel,
        }
        optional = {
            "x": self.variables,
            "f": self.failures,
            "t": self.timeouts,
            "b": self.breadcrumb,
            "p": self.page,
            "e": self.ended,
        }
        out.update({k: v for k, v in optional.items() if v})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """The state ``to_dict`` produced."""
        return cls(
            version=str(data["v"]),
            node=str(data["n"]),
            language=str(data["l"]),
            channel=cast(Channel, data["c"]),
            variables=dict(data.get("x", {})),
            failures=int(data.get("f", 0)),
            timeouts=int(data.get("t", 0)),
            breadcrumb=list(data.get("b", [])),
            page=int(data.get("p", 0)),
            ended=bool(data.get("e", False)),
        )

    def copy(self) -> SessionState:
        """A copy the engine may change without touching the caller's state."""
        return replace(self, variables=dict(self.variables), breadcrumb=list(self.breadcrumb))


@dataclass(frozen=True)
class OperationCall:
    """An operation the hop ran, with its result code (for logs and audits)."""

    name: str
    args: Mapping[str, Any]
    code: str


@dataclass(frozen=True)
class StepResult:
    """The outcome of one hop: the new state and what to show."""

    state: SessionState
    screen: Screen
    accepted: bool
    operations: tuple[OperationCall, ...] = ()

    @property
    def ended(self) -> bool:
        """True when the session is over (final screen or handoff)."""
        return self.screen.final

    @property
    def handoff_reason(self) -> str | None:
        """Why the session went to an operator, or None."""
        return self.screen.handoff.reason if self.screen.handoff else None


class _Model:
    """The throwaway object a hop fires events on: the state and the guard scope."""

    __slots__ = ("channel", "scope", "state")

    def __init__(self, state: str, scope: Mapping[str, Any], channel: str) -> None:
        self.state = state
        self.scope = scope
        self.channel = channel


def _guard(expression: Expression | None, channels: Sequence[str] | None) -> Any:
    def check(event: EventData) -> bool:
        model = cast(_Model, event.model)
        if channels is not None and model.channel not in channels:
            return False
        return expression is None or expression.evaluate(model.scope)

    return check


def _compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars of an operation result, small enough for the session (lists dropped)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dt.date | dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, str):
            out[key] = value[: limits.MAX_VARIABLE_LENGTH]
        elif value is None or isinstance(value, bool | int | float):
            out[key] = value
    return out


def _argument(value: ArgValue, scope: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return lookup(scope, value[1:])
    return value


class Menu:
    """One loaded menu version: the validated model, its parsed texts and its machine."""

    def __init__(self, model: MenuFile, version: str, source: str = "") -> None:
        self.model = model
        self.version = version
        self.source = source
        self.nodes: Mapping[str, Node] = model.nodes
        self.texts: dict[str, CompiledText] = {
            name: compile_text(local, name) for name, local in model.texts.items()
        }
        self._inline: dict[int, CompiledText] = {}
        self.conditions: dict[tuple[str, int], Expression] = {}
        self.regexes: dict[str, re.Pattern[str]] = {}
        self.warnings: list[Diagnostic] = []
        self._page_limits: dict[str, PageLimits] = {}
        self.machine = self._compile()
        self._events = self.machine.events

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
            self._compile_node(add, node_id, node)
        add("home_ussd", "*", model.entry.ussd.home)
        if model.entry.ivr:
            add("home_ivr", "*", model.entry.ivr.home)
        add("operator", "*", model.operator)
        add("failure", "*", model.operator)
        add("unavailable", "*", model.unavailable)
        return machine

    def _condition(self, node_id: str, index: int, source: str | None) -> Expression | None:
        if source is None:
            return None
        condition = self.conditions[(node_id, index)] = parse(source)
        return condition

    def _compile_node(self, add: Any, node_id: str, node: Node) -> None:
        """Add the transitions leaving one node; parse its texts and conditions."""
        if isinstance(node, MenuNode):
            for index, option in enumerate(node.options):
                self.text(option.label)
                condition = self._condition(node_id, index, option.when)
                add(
                    f"opt_{option.key}",
                    node_id,
                    option.target,
                    conditions=[_guard(condition, option.channels)],
                )
        elif isinstance(node, InputNode):
            add("next", node_id, node.next)
            if node.on_failure:
                add("failure", node_id, node.on_failure)
            if isinstance(node.validator, RegexValidator):
                self.regexes[node_id] = re.compile(node.validator.pattern)
            self.text(node.error)
        elif isinstance(node, ConfirmNode):
            add("yes", node_id, node.yes)
            add("no", node_id, node.no)
        elif isinstance(node, ActionNode | ListNode):
            for code, target in node.results.items():
                add(f"res_{code}", node_id, target)
            if isinstance(node, ListNode):
                add("next", node_id, node.next)
                add("empty", node_id, node.empty)
                self.text(node.item)
        elif isinstance(node, RouteNode):
            for index, route in enumerate(node.routes):
                condition = self._condition(node_id, index, route.when)
                add("route", node_id, route.target, conditions=[_guard(condition, None)])
            add("route", node_id, node.default)
        if not isinstance(node, RouteNode | ActionNode):
            self.text(node.text)

    # ---------------------------------------------------------------- the hops

    def new_state(self, channel: Channel, language: str | None = None) -> SessionState:
        """A session at the channel's start node, before any step."""
        entry = self.model.entry.ivr if channel == "ivr" else self.model.entry.ussd
        if entry is None:
            raise ValueError(f"this menu has no {channel} entry point")
        chosen = language if language in self.model.languages else self.model.default_language
        assert chosen is not None
        return SessionState(self.version, entry.start, chosen, channel)

    async def start(
        self,
        channel: Channel,
        ops: Operations,
        language: str | None = None,
        shortcut: Sequence[str] = (),
        variables: Mapping[str, Any] | None = None,
    ) -> StepResult:
        """Begin a session; ``shortcut`` inputs (from ``*111*455*3*...#``) are walked at once.

        The walk stops at the first screen that rejects an input, at any
        confirmation (never skipped), or when the session ends.
        """
        state = self.new_state(channel, language)
        state.variables.update(variables or {})
        hop = _Hop(self, state, ops)
        await hop.settle()
        result = await hop.finish(accepted=True)
        calls = list(result.operations)
        for value in list(shortcut)[: limits.MAX_SHORTCUT_INPUTS]:
            node = self.nodes[result.state.node]
            if result.ended or isinstance(node, ConfirmNode):
                break
            result = await self.step(result.state, value, ops)
            calls.extend(result.operations)
            if not result.accepted:
                break
        return replace(result, operations=tuple(calls))

    async def show(self, state: SessionState, ops: Operations) -> StepResult:
        """Render the session's current screen again without taking input.

        Used to resume a dropped session: nothing is stepped, so no operation
        of an action node runs again (a list node reloads its read-only items).
        """
        hop = _Hop(self, state.copy(), ops)
        if state.node not in self.nodes:
            return await hop.jump(self.model.operator, REASON_UNKNOWN_NODE)
        return await hop.finish(accepted=True)

    async def step(
        self, state: SessionState, user_input: str | None, ops: Operations
    ) -> StepResult:
        """One hop: ``user_input`` is the subscriber's keys, or None when the input timed out.

        ``state`` must be of this version (``MenuRegistry.get(state.version)``).
        """
        if state.version != self.version:
            raise ValueError(f"session of menu version {state.version}, not {self.version}")
        hop = _Hop(self, state.copy(), ops)
        if state.ended:
            return await hop.finish(accepted=False)
        if state.node not in self.nodes:
            return await hop.jump(self.model.operator, REASON_UNKNOWN_NODE)
        if user_input is None:
            return await hop.timeout()
        return await hop.handle(user_input.strip())

    def shortcut_inputs(self, dialed: str) -> list[str] | None:
        """Inputs after the USSD service code (``*111*455*3*100#`` -> ["3", "100"]).

        None when ``dialed`` is not this menu's service code at all.
        """
        return parse_shortcut(dialed, self.model.entry.ussd.code)

    # --------------------------------------------------------------- rendering

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
        )
        return page

    def visible_options(
        self, node_id: str, node: MenuNode, channel: str, scope: Mapping[str, Any]
    ) -> list[int]:
        """Indexes of the options of a menu node shown on ``channel`` given ``scope``."""
        shown = []
        for index, option in enumerate(node.options):
            if option.channels is not None and channel not in option.channels:
                continue
            condition = self.conditions.get((node_id, index))
            if condition is None or condition.evaluate(scope):
                shown.append(index)
        return shown


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


def _scope(state: SessionState) -> dict[str, Any]:
    scope = dict(state.variables)
    scope["session"] = {"language": state.language, "channel": state.channel}
    return scope


class _Hop:
    """The work of one hop on one session state (a private helper of ``Menu``)."""

    def __init__(self, menu: Menu, state: SessionState, ops: Operations) -> None:
        self.menu = menu
        self.state = state
        self.ops = ops
        self.calls: list[OperationCall] = []
        self.items: list[Mapping[str, Any]] | None = None
        self.reason: str | None = None
        self.error: str | None = None
        # Labels and keys of the current screen's entries (set by ``layout``).
        self.labels: list[str] = []
        self.keys: list[str] = []
        # ``layout`` of the current node, kept until the hop moves (a hop that
        # stays, like a page turn or a reprompt, would otherwise lay it out twice).
        self._pages: list[Page] | None = None

    @property
    def node(self) -> Node:
        return self.menu.nodes[self.state.node]

    # ----------------------------------------------------------- moving around

    def fire(self, trigger: str, *, remember: bool = True) -> bool:
        """Fire ``trigger`` on the machine; on a move, reset the per-node counters."""
        event = self.menu._events.get(trigger)
        if event is None:
            return False
        model = _Model(self.state.node, _scope(self.state), self.state.channel)
        if not event.trigger(model):
            return False
        self.arrive(model.state, remember=remember)
        return True

    def arrive(self, node_id: str, *, remember: bool) -> None:
        state = self.state
        if remember and self.menu.nodes[state.node].kind in ("menu", "input", "confirm", "list"):
            state.breadcrumb.append(state.node)
            del state.breadcrumb[: -limits.MAX_BREADCRUMB]
        state.node = node_id
        state.failures = state.timeouts = state.page = 0
        self.items = None
        self._pages = None

    async def jump(self, node_id: str, reason: str) -> StepResult:
        """Go straight to ``node_id`` (operator handoffs), then settle and show."""
        self.reason = reason
        self.arrive(node_id, remember=False)
        await self.settle()
        return await self.finish(accepted=False)

    async def run(self, name: str, args: Mapping[str, ArgValue]) -> OperationResult:
        scope = _scope(self.state)
        values = {key: _argument(value, scope) for key, value in args.items()}
        result = await self.ops(name, values)
        self.calls.append(OperationCall(name, values, result.code))
        return result

    def branch(self, code: str) -> None:
        """Follow an operation's result code: its own branch, ``default``, or ``unavailable``."""
        if not (self.fire(f"res_{code}") or (code != OK and self.fire("res_default"))):
            self.fire("unavailable")

    async def settle(self) -> None:
        """Run automatic nodes (action, route, list loading) until a screen to show."""
        for _ in range(limits.MAX_STEPS_PER_HOP):
            node = self.node
            if isinstance(node, ActionNode):
                result = await self.run(node.operation, node.args)
                if node.save_as:
                    data = _compact(result.data)
                    data["code"] = result.code
                    self.state.variables[node.save_as] = data
                if result.ok and node.set_language is not None:
                    language = _argument(node.set_language, _scope(self.state))
                    if language in self.menu.model.languages:
                        self.state.language = str(language)
                self.branch(result.code)
            elif isinstance(node, RouteNode):
                self.fire("route")
            elif isinstance(node, ListNode) and self.items is None:
                result = await self.run(node.operation, node.args)
                items = result.data.get("items") if result.ok else None
                if not result.ok:
                    self.branch(result.code)
                elif not items:
                    self.fire("empty")
                else:
                    self.items = list(items)
                    return
            else:
                return
        self.reason = REASON_STEP_LIMIT
        self.arrive(self.menu.model.operator, remember=False)

    # ------------------------------------------------------------------ inputs

    async def timeout(self) -> StepResult:
        state = self.state
        state.timeouts += 1
        if state.timeouts >= self.menu.settings_for(state.channel).max_timeouts:
            return await self.fail(REASON_TIMEOUTS)
        return await self.finish(accepted=False)

    async def fail(self, reason: str) -> StepResult:
        self.reason = reason
        self.fire("failure", remember=False)
        await self.settle()
        return await self.finish(accepted=False)

    async def invalid(self) -> StepResult:
        state = self.state
        state.failures += 1
        if state.failures >= self.menu.settings_for(state.channel).max_failures:
            return await self.fail(REASON_FAILURES)
        node = self.node
        error = node.error if isinstance(node, InputNode) else "invalid_input"
        self.error = self.menu.text(error).render(state.language, _scope(state))
        return await self.finish(accepted=False)

    async def handle(self, text: str) -> StepResult:  # noqa: PLR0911, PLR0912 - one dispatch
        state, menu = self.state, self.menu
        ivr_nav = menu.model.channels.ivr.navigation
        ussd_nav = menu.model.channels.ussd.navigation
        nav: IvrNavigation | UssdNavigation = ivr_nav if state.channel == "ivr" else ussd_nav
        node = self.node
        if len(text) > limits.MAX_INPUT_LENGTH:
            return await self.invalid()
        if state.channel == "ivr":
            if text == ivr_nav.repeat:
                return await self.finish(accepted=True)
            if text == ivr_nav.operator:
                self.reason = REASON_CALLER
                self.fire("operator", remember=False)
                return await self.finish(accepted=True)
        elif text == ussd_nav.home:
            state.breadcrumb.clear()
            self.fire("home_ussd", remember=False)
            await self.settle()
            return await self.finish(accepted=True)
        if isinstance(node, ListNode) and self.items is None:
            await self.settle()
            if self.node is not node:
                return await self.finish(accepted=False)
        pages = await self.layout()
        if text == nav.more and state.page < len(pages) - 1:
            state.page += 1
            return await self.finish(accepted=True)
        if text == nav.back:
            if state.page > 0:
                state.page -= 1
                return await self.finish(accepted=True)
            if state.breadcrumb and node.kind not in FINAL_KINDS:
                previous = state.breadcrumb.pop()
                self.arrive(previous, remember=False)
                await self.settle()
                return await self.finish(accepted=True)
        moved = False
        if isinstance(node, MenuNode):
            moved = self.choose(node, text)
        elif isinstance(node, InputNode):
            value = self.validate(node, text)
            if value is not None:
                state.variables[node.var] = value
                moved = self.fire("next")
        elif isinstance(node, ConfirmNode):
            if text in (CONFIRM_YES, CONFIRM_NO):
                moved = self.fire("yes" if text == CONFIRM_YES else "no")
        elif isinstance(node, ListNode):
            moved = self.pick(node, pages[min(state.page, len(pages) - 1)], text)
        if not moved:
            return await self.invalid()
        await self.settle()
        return await self.finish(accepted=True)

    def choose(self, node: MenuNode, text: str) -> bool:
        """Take the visible option with key ``text``; apply its ``set`` assignments."""
        state = self.state
        scope = _scope(state)
        for index in self.menu.visible_options(state.node, node, state.channel, scope):
            option = node.options[index]
            if option.key == text and self.fire(f"opt_{text}"):
                for var, value in option.set.items():
                    state.variables[var] = _argument(value, scope)
                return True
        return False

    def validate(self, node: InputNode, text: str) -> Any:
        """The normalised value, or None when ``text`` is not acceptable."""
        return _validate_input(node.validator, text, self.menu.regexes.get(self.state.node))

    def pick(self, node: ListNode, page: Page, text: str) -> bool:
        if not node.selectable or not (text.isascii() and text.isdigit()) or self.items is None:
            return False
        position = int(text) - 1
        if not 0 <= position < len(page.entries):
            return False
        item = self.items[page.entries[position]]
        for var, item_field in node.select.items():
            self.state.variables[var] = _compact({"v": item.get(item_field)}).get("v")
        return self.fire("next")

    # ---------------------------------------------------------------- screens

    async def layout(self) -> list[Page]:
        """The pages of the current node (USSD pages, or IVR list pages)."""
        if self._pages is None:
            self._pages = await self._layout()
        return self._pages

    async def _layout(self) -> list[Page]:
        state, node, menu = self.state, self.node, self.menu
        if isinstance(node, ListNode) and self.items is None:
            await self.settle()
            node = self.node
        scope = _scope(state)
        language = state.language
        back = bool(state.breadcrumb) and node.kind not in FINAL_KINDS
        entries: list[str] = []
        keys: list[str] = []
        header = ""
        if isinstance(node, RouteNode | ActionNode):
            return [Page("")]
        voice = state.channel == "ivr"
        title = menu.text(node.text)
        header = title.render_voice(language, scope) if voice else title.render(language, scope)
        if isinstance(node, MenuNode):
            for index in menu.visible_options(state.node, node, state.channel, scope):
                option = node.options[index]
                label = menu.text(option.label)
                entries.append(
                    label.render_voice(language, scope) if voice else label.render(language, scope)
                )
                keys.append(option.key)
        elif isinstance(node, ConfirmNode):
            for name, key in (("yes", CONFIRM_YES), ("no", CONFIRM_NO)):
                entries.append(menu.texts[name].render(language, scope))
                keys.append(key)
        elif isinstance(node, ListNode):
            label = menu.text(node.item)
            for item in self.items or []:
                item_scope = {**scope, "item": item}
                entries.append(
                    label.render_voice(language, item_scope)
                    if voice
                    else label.render(language, item_scope)
                )
        self.labels, self.keys = entries, keys
        if voice:
            return _ivr_pages(header, entries, isinstance(node, ListNode))
        if isinstance(node, ListNode):
            return paginate(
                header,
                entries,
                menu.page_limits(language),
                back=back,
                key=lambda position, _index: str(position + 1),
            )
        return paginate(
            header,
            entries,
            menu.page_limits(language),
            back=back,
            key=lambda _position, index: keys[index],
        )

    async def finish(self, *, accepted: bool) -> StepResult:
        """Render the current node for the session's channel and close the hop."""
        state, node, menu = self.state, self.node, self.menu
        pages = await self.layout()
        node = self.node
        state.page = min(state.page, len(pages) - 1)
        page = pages[state.page]
        final = node.kind in FINAL_KINDS and state.page == len(pages) - 1
        handoff = None
        if isinstance(node, OperatorNode):
            destination = menu.model.channels.ivr.operator_destination
            handoff = Handoff(
                self.reason or node.reason, destination if state.channel == "ivr" else ""
            )
        state.ended = final
        if state.channel == "ivr":
            screen = self.ivr_screen(node, page, len(pages), final, handoff)
        else:
            text = page.text
            page_limits = menu.page_limits(state.language)
            if self.error:
                text = _with_error(self.error, text, page_limits)
            text = _clip(text, page_limits)
            screen = Screen(
                node=state.node,
                text=text,
                final=final,
                handoff=handoff,
                page=state.page,
                pages=len(pages),
            )
        return StepResult(state, screen, accepted, tuple(self.calls))

    def ivr_screen(
        self, node: Node, page: Page, pages: int, final: bool, handoff: Handoff | None
    ) -> Screen:
        state, menu = self.state, self.menu
        language = state.language
        ivr = menu.model.channels.ivr
        prompts: list[Prompt] = []
        if self.error:
            prompts.append(Prompt(self.error))
        if not isinstance(node, RouteNode | ActionNode):
            title = menu.text(node.text)
            audio = title.audio.get(language)
            if page.text or audio:
                prompts.append(Prompt(page.text, audio))
        option_text = menu.texts["ivr_option"]
        read_only = isinstance(node, ListNode) and not node.selectable
        for position, index in enumerate(page.entries):
            if read_only:
                prompts.append(Prompt(self.labels[index]))
                continue
            key = self.keys[index] if self.keys else str(position + 1)
            scope = {"label": self.labels[index], "key": key}
            prompts.append(Prompt(option_text.render_voice(language, scope)))
        if state.page < pages - 1:
            more = menu.texts["more"].render_voice(language, {})
            scope = {"label": more, "key": ivr.navigation.more}
            prompts.append(Prompt(option_text.render_voice(language, scope)))
        # Voice and language on every screen (a final one is spoken too); the
        # key-collection hints matter only when the caller is asked for keys.
        single = not final and isinstance(node, MenuNode | ConfirmNode | ListNode)
        hints = IvrHints(
            num_digits=1 if single else None,
            finish_on_key="" if single else "#",
            timeout=ivr.input_timeout,
            voice=ivr.voice.get(language, ""),
            language_code=ivr.language_codes.get(language, language),
        )
        return Screen(
            node=state.node,
            text=" ".join(p.text for p in prompts if p.text),
            final=final,
            handoff=handoff,
            prompts=tuple(prompts),
            ivr=hints,
            page=state.page,
            pages=pages,
        )


def _clip(text: str, page: PageLimits) -> str:
    """Last resort for values longer than declared: drop whole words until the page fits."""
    while not page.fits(text) and " " in text.strip():
        text = text.rstrip().rsplit(" ", 1)[0]
    while not page.fits(text):
        text = text[:-1]
    return text


def _with_error(error: str, text: str, page: PageLimits) -> str:
    """The page with the error text on top; the page's first line gives way when full."""
    for candidate in (f"{error}\n{text}", f"{error}\n{text.partition(chr(10))[2]}"):
        if page.fits(candidate):
            return candidate
    return error if page.fits(error) else text


def _validate_input(rule: Any, text: str, pattern: re.Pattern[str] | None) -> Any:
    """Apply an input validator: the normalised value, or None."""
    digits = text.isascii() and text.isdigit()
    value: Any = None
    if isinstance(rule, PhoneValidator):
        try:
            number = phonenumbers.parse(text, rule.region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    elif isinstance(rule, IntegerValidator):
        if digits and rule.min <= int(text) <= rule.max:
            value = int(text)
    elif isinstance(rule, PinValidator):
        value = text if digits and len(text) == rule.length else None
    elif isinstance(rule, RegexValidator) and pattern is not None:
        matched = len(text) <= rule.max_length and pattern.fullmatch(text) is not None
        value = text if matched else None
    return value


def _ivr_pages(header: str, entries: list[str], is_list: bool) -> list[Page]:
    """IVR pages: a list reads ``IVR_LIST_PAGE_SIZE`` items per page; a menu is one page."""
    if not is_list:
        return [Page(header, tuple(range(len(entries))))]
    size = limits.IVR_LIST_PAGE_SIZE
    chunks = [tuple(range(i, min(i + size, len(entries)))) for i in range(0, len(entries), size)]
    return [Page(header if n == 0 else "", chunk) for n, chunk in enumerate(chunks or [()])]
