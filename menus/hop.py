"""The work of one hop on one session state, as generators that yield operations.

Every method that may need an operation's result is a generator: it yields a
``PendingOperation`` and is sent the ``OperationResult`` (``menus.turn`` drives
it). Nothing here awaits or calls an operation, so an exception of the caller
(a lost race, a ledger outage) never unwinds through the engine.

Transitions are fired on a throwaway ``HopModel`` (see ``menus.engine``);
node kinds decide the rest through their methods (``menus.nodes.base``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from transitions import EventData

from menus import limits
from menus.expr import Expression
from menus.operations import OK, OperationResult, PendingOperation
from menus.screen import Page, PageLimits, Screen, with_error
from menus.state import OperationCall, SessionState, StepResult, argument, scope_of
from menus.voice import ivr_screen

if TYPE_CHECKING:
    from menus.engine import Menu
    from menus.fields import ArgValue, Text
    from menus.model import Node

# A hop's generators yield operations and are sent their results; ``Steps``
# return nothing, ``Shown`` return the hop's outcome.
Steps = Generator[PendingOperation, OperationResult, None]
Shown = Generator[PendingOperation, OperationResult, StepResult]

REASON_CALLER = "caller_request"
REASON_FAILURES = "max_failures"
REASON_TIMEOUTS = "max_timeouts"
REASON_STEP_LIMIT = "step_limit"
REASON_UNKNOWN_NODE = "unknown_node"


class HopModel:
    """The throwaway object a hop fires events on: the state and the guard scope."""

    __slots__ = ("channel", "scope", "state")

    def __init__(self, state: str, scope: Mapping[str, Any], channel: str) -> None:
        self.state = state
        self.scope = scope
        self.channel = channel


def guard(expression: Expression | None, channels: Sequence[str] | None) -> Any:
    """A transitions condition: on one of ``channels`` (any when None) and ``expression`` holds."""

    def check(event: EventData) -> bool:
        model = cast(HopModel, event.model)
        if channels is not None and model.channel not in channels:
            return False
        return expression is None or expression.evaluate(model.scope)

    return check


class Hop:
    """One hop: the state it changes, what it ran, and the current screen's entries."""

    def __init__(self, menu: Menu, state: SessionState) -> None:
        self.menu = menu
        self.state = state
        self.voice = state.channel == "ivr"
        self.calls: list[OperationCall] = []
        # A list node's items, loaded in this hop (never kept in the session).
        self.items: list[Mapping[str, Any]] | None = None
        self.reason: str | None = None
        self.error: str | None = None
        # Labels and keys of the current screen's entries (set by the node's layout),
        # and the language of an entry said in another language than the session's.
        self.labels: list[str] = []
        self.keys: list[str] = []
        self.entry_languages: dict[int, str] = {}
        # The current node's layout, kept until the hop moves (a hop that stays,
        # like a page turn or a reprompt, would otherwise lay it out twice).
        self._pages: list[Page] | None = None

    @property
    def node(self) -> Node:
        """The node the session is at."""
        return self.menu.nodes[self.state.node]

    # ------------------------------------------------------------ for kinds

    def scope(self) -> dict[str, Any]:
        """What templates and conditions read now."""
        return scope_of(self.state)

    def say(self, text: Text, scope: Mapping[str, Any]) -> str:
        """``text`` in the session's language: the voice wording on IVR."""
        compiled = self.menu.text(text)
        if self.voice:
            return compiled.render_voice(self.state.language, scope)
        return compiled.render(self.state.language, scope)

    def fire(self, trigger: str, *, remember: bool = True) -> bool:
        """Fire ``trigger`` on the machine; on a move, reset the per-node counters."""
        event = self.menu.events.get(trigger)
        if event is None:
            return False
        model = HopModel(self.state.node, scope_of(self.state), self.state.channel)
        if not event.trigger(model):
            return False
        self.arrive(model.state, remember=remember)
        return True

    def arrive(self, node_id: str, *, remember: bool) -> None:
        """Move to ``node_id``; remember the screen left when it waited for input."""
        state = self.state
        if remember and self.menu.nodes[state.node].remembered:
            state.breadcrumb.append(state.node)
            del state.breadcrumb[: -limits.MAX_BREADCRUMB]
        if node_id == self.menu.home(state.channel):
            # Home starts afresh: "back" from the main menu leads nowhere.
            state.breadcrumb.clear()
        state.node = node_id
        state.failures = state.timeouts = state.page = 0
        self.items = None
        self._pages = None
        self.entry_languages = {}

    def run(
        self, name: str, args: Mapping[str, ArgValue]
    ) -> Generator[PendingOperation, OperationResult, OperationResult]:
        """Ask the caller to run operation ``name``; the result it sends back."""
        scope = scope_of(self.state)
        values = {key: argument(value, scope) for key, value in args.items()}
        spec = self.menu.operations.get(name)
        # An operation missing from the table (a menu built without validation)
        # counts as mutating: the caller claims the session, the safe side.
        result = yield PendingOperation(name, values, spec.mutating if spec is not None else True)
        self.calls.append(OperationCall(name, values, result.code))
        return result

    def branch(self, code: str) -> None:
        """Follow an operation's result code: its own branch, ``default``, or ``unavailable``."""
        if not (self.fire(f"res_{code}") or (code != OK and self.fire("res_default"))):
            self.fire("unavailable")

    # -------------------------------------------------------------- the hop

    def settle(self) -> Steps:
        """Let automatic nodes act (action, route, list loading) until a screen to show."""
        nodes, state = self.menu.nodes, self.state
        for _ in range(limits.MAX_STEPS_PER_HOP):
            node = nodes[state.node]
            if not node.automatic(self):
                return
            yield from node.settle(self)
        self.reason = REASON_STEP_LIMIT
        self.arrive(self.menu.model.operator, remember=False)

    def jump(self, node_id: str, reason: str) -> Shown:
        """Go straight to ``node_id`` (operator handoffs), then settle and show."""
        self.reason = reason
        self.arrive(node_id, remember=False)
        yield from self.settle()
        return (yield from self.finish(accepted=False))

    def timeout(self) -> Shown:
        """No input came: count it; too many go to the operator."""
        state = self.state
        state.timeouts += 1
        if state.timeouts >= self.menu.settings_for(state.channel).max_timeouts:
            return (yield from self.fail(REASON_TIMEOUTS))
        return (yield from self.finish(accepted=False))

    def fail(self, reason: str) -> Shown:
        """Take the failure path (the node's own, or the operator's)."""
        self.reason = reason
        self.fire("failure", remember=False)
        yield from self.settle()
        return (yield from self.finish(accepted=False))

    def invalid(self) -> Shown:
        """A refused input: count it, show the error above the screen."""
        state = self.state
        state.failures += 1
        if state.failures >= self.menu.settings_for(state.channel).max_failures:
            return (yield from self.fail(REASON_FAILURES))
        self.error = self.say(self.node.error_text(), scope_of(state))
        return (yield from self.finish(accepted=False))

    def handle(self, text: str) -> Shown:  # noqa: PLR0911 - one dispatch
        """The subscriber's keys: navigation first, then the node's own handling."""
        state, model = self.state, self.menu.model
        ivr_nav = model.channels.ivr.navigation
        ussd_nav = model.channels.ussd.navigation
        node = self.node
        if len(text) > limits.MAX_INPUT_LENGTH:
            return (yield from self.invalid())
        if self.voice:
            if text == ivr_nav.repeat:
                return (yield from self.finish(accepted=True))
            if text == ivr_nav.operator:
                self.reason = REASON_CALLER
                self.fire("operator", remember=False)
                return (yield from self.finish(accepted=True))
        elif text == ussd_nav.home:
            state.breadcrumb.clear()
            self.fire("home_ussd", remember=False)
            yield from self.settle()
            return (yield from self.finish(accepted=True))
        if node.reloads(self):
            yield from self.settle()
            if self.node is not node:
                return (yield from self.finish(accepted=False))
        pages = yield from self.layout()
        more, back = (ivr_nav.more, ivr_nav.back) if self.voice else (ussd_nav.more, ussd_nav.back)
        if text == more and state.page < len(pages) - 1:
            state.page += 1
            return (yield from self.finish(accepted=True))
        if text == back:
            if state.page > 0:
                state.page -= 1
                return (yield from self.finish(accepted=True))
            if state.breadcrumb and not node.final:
                previous = state.breadcrumb.pop()
                self.arrive(previous, remember=False)
                yield from self.settle()
                return (yield from self.finish(accepted=True))
        if not node.handle(self, text, pages):
            return (yield from self.invalid())
        yield from self.settle()
        return (yield from self.finish(accepted=True))

    # -------------------------------------------------------------- screens

    def layout(self) -> Generator[PendingOperation, OperationResult, list[Page]]:
        """The pages of the current node (USSD pages, or IVR list pages)."""
        if self._pages is None:
            if self.node.reloads(self):
                yield from self.settle()
            self._pages = self.node.layout(self)
        return self._pages

    def finish(self, *, accepted: bool) -> Shown:
        """Render the current node for the session's channel and close the hop."""
        state, menu = self.state, self.menu
        pages = yield from self.layout()
        node = self.node
        state.page = min(state.page, len(pages) - 1)
        page = pages[state.page]
        final = node.final and state.page == len(pages) - 1
        handoff = node.handoff(self)
        state.ended = final
        if self.voice:
            screen = ivr_screen(self, node, page, pages=len(pages), final=final, handoff=handoff)
        else:
            limits_ = menu.page_limits(state.language)
            text = page.text
            if self.error:
                text = with_error(self.error, page, limits_)
            screen = Screen(
                node=state.node,
                text=_clip(text, limits_),
                final=final,
                handoff=handoff,
                page=state.page,
                pages=len(pages),
            )
        return StepResult(state, screen, accepted, tuple(self.calls))


def _clip(text: str, page: PageLimits) -> str:
    """Last resort for values longer than declared: drop whole words until the page fits."""
    while not page.fits(text) and " " in text.strip():
        text = text.rstrip().rsplit(" ", 1)[0]
    while not page.fits(text):
        text = text[:-1]
    return text
