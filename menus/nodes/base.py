"""What every node kind is: a pydantic model of its YAML plus its behaviour.

A kind is one module of ``menus.nodes`` with a ``NodeKind`` subclass named by
its module-level ``KIND``. The class is the YAML schema of the kind (its
``kind`` field is a ``Literal`` of the module's name) and says, in methods
with defaults below:

- where the node leads (``edges``, computed once per file, labelled);
- how it compiles (``compile``: the machine transitions of its edges);
- which texts it holds (``texts``, for the validator's text checks);
- how it is laid out per channel (``layout``, ``entries``) and what it does
  with the subscriber's input (``handle``);
- what it does on its own, without input (``automatic`` and ``settle``:
  actions, routes, list loading), as a generator that yields each operation
  the caller must run;
- its own checks (``check``, ``check_length``).

The engine, validator and schema only ever go through these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from menus.fields import Channel, StrictModel, Text
from menus.hop import Steps, guard
from menus.operations import UNAVAILABLE, OperationSpec
from menus.screen import Handoff, Page, PageLimits, layout
from menus.state import scope_of

if TYPE_CHECKING:
    from menus.engine import Menu
    from menus.errors import Level
    from menus.fields import ArgValue
    from menus.hop import Hop
    from menus.model import MenuFile
    from menus.operations import OperationTable

# A path into the YAML document: ("nodes", "main", "options", 0, "label").
Path_ = tuple[str | int, ...]
# Machine.add_transition(trigger, source, dest, conditions=...).
AddTransition = Callable[..., Any]


class Edge(NamedTuple):
    """A way out of a node: ``label`` says what takes it, ``target`` where it leads.

    ``trigger`` is the machine event that takes it; empty when a menu-wide
    transition does (too many failures -> the operator node, an unavailable
    backend -> the ``unavailable`` node). ``when`` and ``channels`` restrict it.
    A named tuple because it is cheap to build: big menus have many edges.
    """

    label: str
    target: str
    trigger: str = ""
    when: str | None = None
    channels: tuple[Channel, ...] | None = None

    @property
    def implicit(self) -> bool:
        """True when no line of the node names it (a menu-wide transition takes it)."""
        return not self.trigger


class Checks(Protocol):
    """What the validator offers a kind's ``check`` and ``check_length``."""

    model: MenuFile
    operations: OperationTable

    def report(self, path: Path_, message: str, level: Level = "error") -> None:
        """Record a finding at ``path`` (an error unless ``level`` says "warning")."""

    def target(self, path: Path_, node_id: str | None) -> None:
        """Report ``node_id`` when it names no node."""

    def condition(self, path: Path_, source: str) -> None:
        """Report a condition that does not parse."""

    def nav_keys(self, channels: Sequence[str] | None) -> dict[str, str]:
        """Navigation keys on ``channels`` (all when None) -> what they are."""
        ...

    def worst(self, path: Path_, text: Text, language: str) -> str:
        """The text at ``path`` with every placeholder at its declared length."""
        ...

    def page_limits(self, language: str) -> PageLimits:
        """USSD page limits with the navigation lines at their longest."""
        ...

    def fit(self, page: PageLimits, text: str, path: Path_, language: str, what: str) -> None:
        """Report ``text`` when it does not fit one USSD page."""


class NodeKind(StrictModel):
    """Base of every node kind; the defaults suit a screen that shows its ``title``."""

    # Place among the kinds in listings (schema, "expected tags" messages).
    order: ClassVar[int] = 1000
    # Shown as the session's last screen (message, operator).
    final: ClassVar[bool] = False
    # Waits for input, so "back" returns to it (kept in the breadcrumb).
    remembered: ClassVar[bool] = False
    # IVR collects one key for it (no finishing '#').
    single_key: ClassVar[bool] = False
    # A USSD shortcut string stops here (a confirmation is never skipped).
    stops_shortcut: ClassVar[bool] = False
    # The voice line says its navigation keys once (menus, lists).
    announces_keys: ClassVar[bool] = False
    # A dropped session may be resumed here: something was being typed or
    # confirmed (inputs, confirmations), never a screen that only showed something.
    resumable: ClassVar[bool] = False

    kind: str

    # ----------------------------------------------------------- structure

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """Every way out of this node, in order (``model`` for menu-wide targets)."""
        return ()

    def texts(self) -> Iterator[tuple[Path_, Text]]:
        """Every text field with its path inside the node."""
        title = self.title()
        if title is not None:
            yield ("text",), title

    def title(self) -> Text | None:
        """The text shown first (the title of the screen), or None when nothing is shown."""
        return None

    def compile(self, node_id: str, menu: Menu, add: AddTransition) -> None:
        """Add the transitions of this node's edges; parse its texts and conditions once."""
        for index, edge in enumerate(menu.edges(node_id)):
            if not edge.trigger:
                continue
            if edge.when is None and edge.channels is None:
                add(edge.trigger, node_id, edge.target)
            else:
                condition = menu.condition(node_id, index, edge.when)
                add(
                    edge.trigger,
                    node_id,
                    edge.target,
                    conditions=[guard(condition, edge.channels)],
                )
        for _path, text in self.texts():
            menu.text(text)

    # -------------------------------------------------------------- checks

    def check(self, base: Path_, checks: Checks) -> None:
        """Report what is wrong with this node beyond its schema (``base`` is its path)."""

    def check_length(self, base: Path_, checks: Checks, language: str) -> None:
        """Report screens of this node that cannot fit a USSD page in ``language``."""
        if self.title() is not None:
            self.fit_screen(base, checks, language)

    def fit_screen(self, base: Path_, checks: Checks, language: str, *lines: str) -> None:
        """Check the title, then ``lines``, then the back line (unless final) on one page."""
        title = self.title()
        assert title is not None
        page = checks.page_limits(language)
        shown = [checks.worst((*base, "text"), title, language), *lines]
        if not self.final:
            shown.append(page.back_line)
        checks.fit(page, "\n".join(shown), (*base, "text"), language, "the text")

    # ------------------------------------------------------------- the hop

    def automatic(self, hop: Hop) -> bool:
        """True when the node acts without input now (``settle`` must run)."""
        return False

    def reloads(self, hop: Hop) -> bool:
        """True when the node must settle again before it is shown or takes input."""
        return False

    def settle(self, hop: Hop) -> Steps:
        """Act without input: yield operations, fire transitions (only when ``automatic``)."""
        raise NotImplementedError(f"a {self.kind} node does not act on its own")

    def layout(self, hop: Hop) -> list[Page]:
        """The node's pages on the hop's channel; sets ``hop.labels`` and ``hop.keys``."""
        title = self.title()
        if title is None:
            return [Page("")]
        state = hop.state
        scope = scope_of(state)
        header = hop.say(title, scope)
        labels, keys = self.entries(hop, scope)
        hop.labels, hop.keys = labels, keys
        if hop.voice:
            return [Page(header, tuple(range(len(labels))))]
        return layout(
            header,
            labels,
            hop.menu.page_limits(state.language),
            back=bool(state.breadcrumb) and not self.final,
            keys=keys,
        )

    def entries(self, hop: Hop, scope: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The labels and keys of the choices shown under the title."""
        return [], []

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        """Take the subscriber's input (navigation keys are already handled); True on a move."""
        return False

    def error_text(self) -> Text:
        """The text shown above the screen after an invalid input."""
        return "invalid_input"

    def reads_entries(self) -> bool:
        """True when IVR reads the entries as they are (no "press N" per entry)."""
        return False

    def masks_input(self) -> bool:
        """True when the input at this node is secret (logs and breadcrumbs show ****)."""
        return False

    def handoff(self, hop: Hop) -> Handoff | None:
        """The handoff to an operator when this node is shown, or None."""
        return None


def check_operation(
    base: Path_,
    checks: Checks,
    operation: str,
    args: dict[str, ArgValue],
    results: dict[str, str],
) -> OperationSpec | None:
    """Check a node's operation, arguments and result branches; its spec when known."""
    table = checks.operations
    spec = table.get(operation)
    if spec is None:
        known = ", ".join(sorted(table))
        checks.report((*base, "operation"), f"unknown operation '{operation}' ({known})")
        return None
    for arg in args:
        if arg not in spec.args | spec.optional_args:
            checks.report((*base, "args", arg), f"{operation} takes no argument '{arg}'")
    for arg in sorted(spec.args - set(args)):
        checks.report((*base, "args"), f"{operation} needs argument '{arg}'")
    for code, target in results.items():
        if code != "default" and code not in spec.codes:
            checks.report((*base, "results", code), f"{operation} never returns '{code}'")
        checks.target((*base, "results", code), target)
    return spec


def result_edges(results: dict[str, str], model: MenuFile) -> list[Edge]:
    """Edges of an operation's result branches, then the menu-wide ``unavailable`` one."""
    edges = [Edge(code, target, f"res_{code}") for code, target in results.items()]
    edges.append(Edge(UNAVAILABLE, model.unavailable))
    return edges


__all__ = [
    "AddTransition",
    "Checks",
    "Edge",
    "NodeKind",
    "Path_",
    "Steps",
    "check_operation",
    "result_edges",
]
