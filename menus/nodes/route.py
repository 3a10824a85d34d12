"""``route``: branch on conditions without showing anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from menus.fields import NodeId, StrictModel
from menus.nodes.base import Checks, Edge, NodeKind, Path_, Steps

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import MenuFile


class Route(StrictModel):
    """One branch of a route."""

    when: str
    target: NodeId


class RouteNode(NodeKind):
    """Branch on conditions without showing anything."""

    order: ClassVar[int] = 80

    kind: Literal["route"]
    routes: list[Route] = Field(min_length=1)
    default: NodeId

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """One edge per branch, in order (first true wins), then the default."""
        branches = [Edge(r.when, r.target, "route", r.when) for r in self.routes]
        return (*branches, Edge("default", self.default, "route"))

    def automatic(self, hop: Hop) -> bool:
        """Always: a route is never shown."""
        return True

    def settle(self, hop: Hop) -> Steps:
        """Take the first branch whose condition holds (the machine's guards decide)."""
        hop.fire("route")
        yield from ()

    def check(self, base: Path_, checks: Checks) -> None:
        """Conditions parse; targets exist."""
        for index, route in enumerate(self.routes):
            checks.condition((*base, "routes", index, "when"), route.when)
            checks.target((*base, "routes", index, "target"), route.target)
        checks.target((*base, "default"), self.default)


KIND = RouteNode
