"""``confirm``: a yes/no question (1 yes, 2 no); a shortcut string never skips one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from menus.fields import NodeId, Text
from menus.nodes.base import Checks, Edge, NodeKind, Path_

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import MenuFile
    from menus.screen import Page

CONFIRM_YES = "1"
CONFIRM_NO = "2"


class ConfirmNode(NodeKind):
    """A yes/no question."""

    order: ClassVar[int] = 30
    remembered: ClassVar[bool] = True
    single_key: ClassVar[bool] = True
    stops_shortcut: ClassVar[bool] = True
    resumable: ClassVar[bool] = True

    kind: Literal["confirm"]
    text: Text
    yes: NodeId
    no: NodeId

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """Yes, then no."""
        return (
            Edge(f"{CONFIRM_YES} yes", self.yes, "yes"),
            Edge(f"{CONFIRM_NO} no", self.no, "no"),
        )

    def title(self) -> Text:
        """The question."""
        return self.text

    def entries(self, hop: Hop, scope: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The words of the engine's ``yes`` and ``no`` texts, keys 1 and 2."""
        texts, language = hop.menu.texts, hop.state.language
        # Screen wording on IVR too: the answers are read inside `ivr_option`.
        labels = [texts[name].render(language, scope) for name in ("yes", "no")]
        return labels, [CONFIRM_YES, CONFIRM_NO]

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        """1 takes ``yes``, 2 takes ``no``."""
        if text not in (CONFIRM_YES, CONFIRM_NO):
            return False
        return hop.fire("yes" if text == CONFIRM_YES else "no")

    def check(self, base: Path_, checks: Checks) -> None:
        """Both targets exist."""
        checks.target((*base, "yes"), self.yes)
        checks.target((*base, "no"), self.no)

    def check_length(self, base: Path_, checks: Checks, language: str) -> None:
        """The question and both answers on one page."""
        yes = checks.worst(("texts", "yes"), "yes", language)
        no = checks.worst(("texts", "no"), "no", language)
        self.fit_screen(base, checks, language, f"{CONFIRM_YES}. {yes}", f"{CONFIRM_NO}. {no}")


KIND = ConfirmNode
