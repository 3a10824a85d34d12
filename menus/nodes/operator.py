"""``operator``: a final screen that hands the session to a human, with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from menus.fields import Text
from menus.nodes.base import NodeKind
from menus.screen import Handoff

if TYPE_CHECKING:
    from menus.hop import Hop


class OperatorNode(NodeKind):
    """Hand the session to a human, with a reason."""

    order: ClassVar[int] = 70
    final: ClassVar[bool] = True

    kind: Literal["operator"]
    text: Text
    reason: str = "caller_request"

    def title(self) -> Text:
        """What the subscriber hears or reads before the handoff."""
        return self.text

    def handoff(self, hop: Hop) -> Handoff:
        """The hop's reason (failures, timeouts...) or the node's; IVR transfers the call."""
        destination = hop.menu.model.channels.ivr.operator_destination if hop.voice else ""
        return Handoff(hop.reason or self.reason, destination)


KIND = OperatorNode
