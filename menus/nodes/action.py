"""``action``: run an operation and branch on its result code."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from menus.fields import ArgValue, NodeId
from menus.nodes.base import Checks, Edge, NodeKind, Path_, Steps, check_operation, result_edges
from menus.operations import UNAVAILABLE
from menus.state import argument, compact

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import MenuFile


class ActionNode(NodeKind):
    """Run an operation and branch on its result code."""

    order: ClassVar[int] = 40

    kind: Literal["action"]
    operation: str
    args: dict[str, ArgValue] = Field(default_factory=dict)
    results: dict[str, NodeId] = Field(
        min_length=1, description="Result code (or `default`) -> target."
    )
    save_as: NodeId | None = Field(default=None, description="Keep the result data here.")
    set_language: ArgValue | None = Field(
        default=None, description="On ok, switch the session to this language."
    )

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """One edge per result branch, then the menu-wide ``unavailable``."""
        return tuple(result_edges(self.results, model))

    def automatic(self, hop: Hop) -> bool:
        """Always: an action is never shown."""
        return True

    def settle(self, hop: Hop) -> Steps:
        """Run the operation, keep its data, switch language on ok, follow its code."""
        result = yield from hop.run(self.operation, self.args)
        state = hop.state
        if self.save_as:
            data = compact(result.data)
            data["code"] = result.code
            state.variables[self.save_as] = data
        if result.ok and self.set_language is not None:
            language = argument(self.set_language, hop.scope())
            if language in hop.menu.model.languages:
                state.language = str(language)
        hop.branch(result.code)

    def check(self, base: Path_, checks: Checks) -> None:
        """The operation, its arguments and codes; every code it returns is handled."""
        spec = check_operation(base, checks, self.operation, self.args, self.results)
        if spec is None:
            return
        handled = set(self.results) | {UNAVAILABLE}
        if "default" not in handled and spec.codes - handled:
            missing = ", ".join(sorted(spec.codes - handled))
            checks.report(
                (*base, "results"), f"result codes not handled (add them or default): {missing}"
            )


KIND = ActionNode
