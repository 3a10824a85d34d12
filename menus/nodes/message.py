"""``message``: a final screen."""

from __future__ import annotations

from typing import ClassVar, Literal

from menus.fields import Text
from menus.nodes.base import NodeKind


class MessageNode(NodeKind):
    """A final screen."""

    order: ClassVar[int] = 60
    final: ClassVar[bool] = True

    kind: Literal["message"]
    text: Text

    def title(self) -> Text:
        """The message."""
        return self.text


KIND = MessageNode
