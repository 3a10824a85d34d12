"""``input``: collect a value into a variable, checked by a validator."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import phonenumbers
from pydantic import Field

from menus import limits
from menus.fields import NodeId, StrictModel, Text
from menus.nodes.base import AddTransition, Checks, Edge, NodeKind, Path_
from menus.state import argument, scope_of

if TYPE_CHECKING:
    from menus.engine import Menu
    from menus.hop import Hop
    from menus.model import MenuFile
    from menus.screen import Page


class PhoneValidator(StrictModel):
    """A phone number, normalised to E.164."""

    secret: ClassVar[bool] = False

    type: Literal["phone"]
    region: str = "RU"

    def accept(
        self, text: str, pattern: re.Pattern[str] | None, scope: Mapping[str, Any] | None = None
    ) -> Any:
        """The number in E.164, or None."""
        try:
            number = phonenumbers.parse(text, self.region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# A bound read from a variable when the input is taken: "$chk.maximum".
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VariableBound = Annotated[str, Field(pattern=rf"^\${_NAME}(\.{_NAME})*$")]
DEFAULT_MIN = 0
DEFAULT_MAX = 1_000_000


class IntegerValidator(StrictModel):
    """A whole number in a range; a bound may be a variable (``$chk.maximum``).

    A variable bound comes from where the rules live (an operation's result),
    so the menu never repeats a limit the backend enforces; when it holds no
    whole number, the default bound applies.
    """

    secret: ClassVar[bool] = False

    type: Literal["integer"]
    min: int | VariableBound = DEFAULT_MIN
    max: Annotated[int, Field(le=10**9)] | VariableBound = DEFAULT_MAX

    def bounds(self, scope: Mapping[str, Any] | None) -> tuple[int, int]:
        """The range in ``scope`` (variable bounds read from it)."""
        return _bound(self.min, scope, DEFAULT_MIN), _bound(self.max, scope, DEFAULT_MAX)

    def accept(
        self, text: str, pattern: re.Pattern[str] | None, scope: Mapping[str, Any] | None = None
    ) -> Any:
        """The number, or None."""
        low, high = self.bounds(scope)
        digits = text.isascii() and text.isdigit() and len(text) <= 10
        return int(text) if digits and low <= int(text) <= high else None


def _bound(value: int | str, scope: Mapping[str, Any] | None, default: int) -> int:
    if isinstance(value, int):
        return value
    found = argument(value, scope or {})
    if isinstance(found, bool) or not isinstance(found, int):
        return default
    return found


class RegexValidator(StrictModel):
    """Text matching a regular expression entirely."""

    secret: ClassVar[bool] = False

    type: Literal["regex"]
    pattern: str
    max_length: int = Field(default=20, ge=1, le=64)

    def accept(
        self, text: str, pattern: re.Pattern[str] | None, scope: Mapping[str, Any] | None = None
    ) -> Any:
        """The text, or None (``pattern`` is this validator's, compiled at load)."""
        if pattern is None or len(text) > self.max_length:
            return None
        return text if pattern.fullmatch(text) is not None else None


class PinValidator(StrictModel):
    """A PIN of exactly ``length`` digits."""

    # Never shown back: operators' breadcrumbs write **** for it.
    secret: ClassVar[bool] = True

    type: Literal["pin"]
    length: int = Field(default=4, ge=4, le=8)

    def accept(
        self, text: str, pattern: re.Pattern[str] | None, scope: Mapping[str, Any] | None = None
    ) -> Any:
        """The PIN, or None."""
        digits = text.isascii() and text.isdigit()
        return text if digits and len(text) == self.length else None


Validator = Annotated[
    PhoneValidator | IntegerValidator | RegexValidator | PinValidator,
    Field(discriminator="type"),
]


class InputNode(NodeKind):
    """Collect a value into a variable."""

    order: ClassVar[int] = 20
    remembered: ClassVar[bool] = True
    resumable: ClassVar[bool] = True

    kind: Literal["input"]
    text: Text
    var: NodeId
    validator: Validator
    error: Text = "invalid_input"
    next: NodeId
    on_failure: NodeId | None = Field(
        default=None, description="Where too many failures lead (default: the operator node)."
    )

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        """A valid value, then too many failures (the node's own path, or the operator)."""
        failure = (
            Edge("too many errors", self.on_failure, "failure")
            if self.on_failure
            else Edge("too many errors", model.operator)
        )
        return Edge("valid", self.next, "next"), failure

    def texts(self) -> Iterator[tuple[Path_, Text]]:
        """The question, then the error text."""
        yield ("text",), self.text
        yield ("error",), self.error

    def title(self) -> Text:
        """The question."""
        return self.text

    def compile(self, node_id: str, menu: Menu, add: AddTransition) -> None:
        """The transitions, and a regex validator's pattern compiled once."""
        super().compile(node_id, menu, add)
        if isinstance(self.validator, RegexValidator):
            menu.regexes[node_id] = re.compile(self.validator.pattern)

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        """Keep the normalised value in ``var`` and go on, or refuse it."""
        node_id = hop.state.node
        value = self.validator.accept(text, hop.menu.regexes.get(node_id), scope_of(hop.state))
        if value is None:
            return False
        hop.state.variables[self.var] = value
        return hop.fire("next")

    def error_text(self) -> Text:
        """The node's own error text."""
        return self.error

    def masks_input(self) -> bool:
        """True for a PIN."""
        return self.validator.secret

    def check(self, base: Path_, checks: Checks) -> None:
        """Targets exist; a regex compiles and is short; an integer range is not empty."""
        checks.target((*base, "next"), self.next)
        checks.target((*base, "on_failure"), self.on_failure)
        rule = self.validator
        if isinstance(rule, RegexValidator):
            if len(rule.pattern) > limits.MAX_REGEX_LENGTH:
                checks.report((*base, "validator", "pattern"), "pattern too long")
            try:
                re.compile(rule.pattern)
            except re.error as err:
                checks.report((*base, "validator", "pattern"), f"bad pattern: {err}")
        if (
            isinstance(rule, IntegerValidator)
            and isinstance(rule.min, int)
            and isinstance(rule.max, int)
            and rule.min > rule.max
        ):
            checks.report((*base, "validator"), "min is greater than max")

    def check_length(self, base: Path_, checks: Checks, language: str) -> None:
        """The question with the back line, and the error text, each on one page."""
        self.fit_screen(base, checks, language)
        page = checks.page_limits(language)
        error = checks.worst((*base, "error"), self.error, language)
        checks.fit(page, error, (*base, "error"), language, "the error text")


KIND = InputNode
