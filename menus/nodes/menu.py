"""``menu``: a title and numbered options, each leading somewhere."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from menus import limits
from menus.fields import ArgValue, Channel, Key, LanguageCode, NodeId, StrictModel, Text
from menus.nodes.base import Checks, Edge, NodeKind, Path_
from menus.screen import paginate
from menus.state import argument, scope_of

if TYPE_CHECKING:
    from menus.engine import Menu
    from menus.hop import Hop
    from menus.model import MenuFile
    from menus.screen import Page


class Option(StrictModel):
    """One choice of a menu."""

    key: Key
    label: Text
    target: NodeId
    when: str | None = Field(default=None, description="Show only when this condition holds.")
    channels: list[Channel] | None = Field(default=None, description="Show on these only.")
    set: dict[NodeId, ArgValue] = Field(
        default_factory=dict, description="Variables set when chosen ($var or literal)."
    )
    language: LanguageCode | None = Field(
        default=None,
        description="Said in this language, by its voice (a language's own name: English).",
    )


class MenuNode(NodeKind):
    """A title and numbered options."""

    order: ClassVar[int] = 10
    remembered: ClassVar[bool] = True
    single_key: ClassVar[bool] = True
    announces_keys: ClassVar[bool] = True

    kind: Literal["menu"]
    text: Text
    options: list[Option] = Field(min_length=1)

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """One edge per option, in order (the compiler keys conditions by that index)."""
        return tuple(
            Edge(
                option.key,
                option.target,
                f"opt_{option.key}",
                option.when,
                None if option.channels is None else tuple(option.channels),
            )
            for option in self.options
        )

    def texts(self) -> Iterator[tuple[Path_, Text]]:
        """The title, then every option's label."""
        yield ("text",), self.text
        for index, option in enumerate(self.options):
            yield ("options", index, "label"), option.label

    def title(self) -> Text:
        """The menu's title."""
        return self.text

    def visible(
        self, node_id: str, menu: Menu, channel: str, scope: Mapping[str, Any]
    ) -> list[int]:
        """Indexes of the options shown on ``channel`` given ``scope``."""
        shown = []
        for index, option in enumerate(self.options):
            if option.channels is not None and channel not in option.channels:
                continue
            condition = menu.conditions.get((node_id, index))
            if condition is None or condition.evaluate(scope):
                shown.append(index)
        return shown

    def entries(self, hop: Hop, scope: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The visible options' labels and keys."""
        state, menu = hop.state, hop.menu
        language, voice = state.language, hop.voice
        labels: list[str] = []
        keys: list[str] = []
        hop.entry_languages = {}
        for index in self.visible(state.node, menu, state.channel, scope):
            option = self.options[index]
            label = menu.text(option.label)
            said_in = language
            if voice and option.language is not None and option.language != language:
                said_in = hop.entry_languages[len(labels)] = option.language
            # Inline rather than hop.say: this loop runs for every option of every menu hop.
            labels.append(
                label.render_voice(said_in, scope) if voice else label.render(language, scope)
            )
            keys.append(option.key)
        return labels, keys

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        """Take the visible option with key ``text``; apply its ``set`` assignments."""
        state = hop.state
        scope = scope_of(state)
        for index in self.visible(state.node, hop.menu, state.channel, scope):
            option = self.options[index]
            if option.key == text and hop.fire(f"opt_{text}"):
                for var, value in option.set.items():
                    state.variables[var] = argument(value, scope)
                return True
        return False

    def check(self, base: Path_, checks: Checks) -> None:
        """Keys unique and clear of navigation keys, one digit on IVR; targets; conditions."""
        seen: set[str] = set()
        has_ivr = checks.model.entry.ivr is not None
        for index, option in enumerate(self.options):
            where = (*base, "options", index)
            if option.key in seen and option.when is None:
                checks.report((*where, "key"), f"key '{option.key}' is used twice")
            seen.add(option.key)
            clash = checks.nav_keys(option.channels).get(option.key)
            if clash:
                checks.report((*where, "key"), f"key '{option.key}' is the {clash} key")
            on_ivr = option.channels is None or "ivr" in option.channels
            if on_ivr and has_ivr and len(option.key) > 1:
                checks.report((*where, "key"), "IVR keys are one digit (limit the option to ussd)")
            checks.target((*where, "target"), option.target)
            if option.language is not None and option.language not in checks.model.languages:
                message = f"language '{option.language}' is not in languages"
                checks.report((*where, "language"), message)
            if option.when is not None:
                checks.condition((*where, "when"), option.when)

    def check_length(self, base: Path_, checks: Checks, language: str) -> None:
        """Each USSD option alone with the navigation lines, then every page."""
        page = checks.page_limits(language)
        title = checks.worst((*base, "text"), self.text, language)
        shown = [
            (index, option)
            for index, option in enumerate(self.options)
            if option.channels is None or "ussd" in option.channels
        ]
        labels = [
            checks.worst((*base, "options", index, "label"), option.label, language)
            for index, option in shown
        ]
        keys = [option.key for _index, option in shown]
        each_fits = True
        for (index, option), label in zip(shown, labels, strict=True):
            alone = "\n".join([f"{option.key}. {label}", page.more_line, page.back_line])
            where = (*base, "options", index, "label")
            checks.fit(page, alone, where, language, f"option {option.key}")
            each_fits = each_fits and page.fits(alone)
        pages = paginate(title, labels, page, back=True, key=lambda _p, i: keys[i])
        for number, laid in enumerate(pages, 1):
            checks.fit(page, laid.text, (*base, "text"), language, f"page {number}")
        short = len(shown) <= limits.SHORT_MENU_OPTIONS
        if each_fits and short and len(pages) > limits.SHORT_MENU_PAGES:
            checks.report(
                (*base, "options"),
                f"{language}: {len(shown)} options take {len(pages)} USSD pages, "
                f"at most {limits.SHORT_MENU_PAGES}: shorten the labels",
            )


KIND = MenuNode
