"""``list``: options built from an operation's ``items``, paginated, loaded on every hop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from menus import limits
from menus.fields import ArgValue, NodeId, Text
from menus.nodes.base import Checks, Edge, NodeKind, Path_, Steps, check_operation, result_edges
from menus.screen import Page, layout
from menus.state import compact, scope_of

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import MenuFile


class ListNode(NodeKind):
    """Options built from an operation's ``items``, paginated."""

    order: ClassVar[int] = 50
    remembered: ClassVar[bool] = True
    single_key: ClassVar[bool] = True
    announces_keys: ClassVar[bool] = True

    kind: Literal["list"]
    text: Text
    operation: str
    args: dict[str, ArgValue] = Field(default_factory=dict)
    item: Text = Field(description="Label of one item; `item.FIELD` placeholders.")
    select: dict[str, str] = Field(
        default_factory=dict, description="variable -> item field, stored when picked."
    )
    selectable: bool = Field(default=True, description="false: items are read, not chosen.")
    next: NodeId | None = Field(default=None, description="Where a picked item leads.")
    empty: NodeId
    results: dict[str, NodeId] = Field(
        default_factory=dict, description="Non-ok result code (or `default`) -> target."
    )

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """A picked item, no items, result branches, ``unavailable``; read-only: the operator."""
        edges = [Edge("item", self.next, "next")] if self.next is not None else []
        edges.append(Edge("empty", self.empty, "empty"))
        edges += result_edges(self.results, model)
        if not self.selectable:
            # A read-only list leads on by back/home (USSD) or the operator key (IVR).
            edges.append(Edge("operator", model.operator))
        return tuple(edges)

    def texts(self) -> Iterator[tuple[Path_, Text]]:
        """The title, then the label of one item."""
        yield ("text",), self.text
        yield ("item",), self.item

    def title(self) -> Text:
        """The list's title."""
        return self.text

    def automatic(self, hop: Hop) -> bool:
        """Until its items are loaded in this hop."""
        return hop.items is None

    def reloads(self, hop: Hop) -> bool:
        """Items are never kept in the session: each hop loads them again."""
        return hop.items is None

    def settle(self, hop: Hop) -> Steps:
        """Load the items; no items or a non-ok code lead elsewhere."""
        result = yield from hop.run(self.operation, self.args)
        items = result.data.get("items") if result.ok else None
        if not result.ok:
            hop.branch(result.code)
        elif not items:
            hop.fire("empty")
        else:
            hop.items = list(items)

    def layout(self, hop: Hop) -> list[Page]:
        """Items numbered 1.. on every USSD page; IVR reads a few items per page.

        A read-only list's items carry no number: there is nothing to press.
        """
        state = hop.state
        scope = scope_of(state)
        header = hop.say(self.text, scope)
        label = hop.menu.text(self.item)
        language = state.language
        render = label.render_voice if hop.voice else label.render
        labels = [render(language, {**scope, "item": item}) for item in hop.items or []]
        hop.labels, hop.keys = labels, []
        if hop.voice:
            size = limits.IVR_LIST_PAGE_SIZE
            chunks = [
                tuple(range(i, min(i + size, len(labels)))) for i in range(0, len(labels), size)
            ]
            return [Page(header if n == 0 else "", chunk) for n, chunk in enumerate(chunks or [()])]
        return layout(
            header,
            labels,
            hop.menu.page_limits(language),
            back=bool(state.breadcrumb),
            keys=None if self.selectable else [""] * len(labels),
        )

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        """Pick the item numbered ``text`` on the current page; keep its ``select`` fields."""
        items = hop.items
        if not self.selectable or not (text.isascii() and text.isdigit()) or items is None:
            return False
        page = pages[min(hop.state.page, len(pages) - 1)]
        position = int(text) - 1
        if not 0 <= position < len(page.entries):
            return False
        item = items[page.entries[position]]
        for var, item_field in self.select.items():
            hop.state.variables[var] = compact({"v": item.get(item_field)}).get("v")
        return hop.fire("next")

    def reads_entries(self) -> bool:
        """A read-only list reads its items; there is nothing to press."""
        return not self.selectable

    def check(self, base: Path_, checks: Checks) -> None:
        """The operation (read-only), its arguments and codes; targets; a pick leads somewhere."""
        spec = check_operation(base, checks, self.operation, self.args, self.results)
        if spec is None:
            return
        if spec.mutating:
            checks.report((*base, "operation"), f"a list cannot run {self.operation}")
        checks.target((*base, "next"), self.next)
        checks.target((*base, "empty"), self.empty)
        if self.selectable and self.next is None:
            checks.report(base, "a selectable list needs next (or selectable: false)")

    def check_length(self, base: Path_, checks: Checks, language: str) -> None:
        """A page with the title, one item at its longest and both navigation lines."""
        page = checks.page_limits(language)
        title = checks.worst((*base, "text"), self.text, language)
        item = checks.worst((*base, "item"), self.item, language)
        line = f"1. {item}" if self.selectable else item
        text = "\n".join([title, line, page.more_line, page.back_line])
        checks.fit(page, text, (*base, "item"), language, "a page with one item")


KIND = ListNode
