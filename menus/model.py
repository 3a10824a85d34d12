"""The menu language as pydantic models: what ``menu_definitions.yaml`` may contain.

Structure only; cross-references (targets, texts, operations, lengths) are
checked by ``menus.validate``. The JSON Schema of the language is generated
from these models (``menus.json_schema``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["ussd", "ivr"]
CHANNELS: tuple[Channel, ...] = ("ussd", "ivr")

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Key = Annotated[str, Field(pattern=r"^[0-9*#]{1,3}$")]
# A language code as Babel knows it: ru, en, en_GB.
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
# An argument or assignment value: "$path" reads a variable, anything else is literal.
ArgValue = str | int | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(BaseModel):
    """A text per language (``ru: ...``, ``en: ...``), with optional IVR wording and audio."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)

    ivr: dict[str, str] | None = Field(
        default=None, description="Wording for voice, per language, when it differs."
    )
    audio: dict[str, str] | None = Field(
        default=None, description="An audio file per language played instead of text-to-speech."
    )


# A bare string names a reusable text from `texts`.
Text = Annotated[
    str | LocalText,
    Field(description="Texts per language, or the name of a reusable text from `texts`."),
]


class UssdNavigation(_Strict):
    """Keys that work on every USSD screen."""

    back: Key = "0"
    home: Key = "00"
    more: Key = "99"


class IvrNavigation(_Strict):
    """Keys that work on every IVR prompt."""

    repeat: Key = "*"
    back: Key = "#"
    operator: Key = "0"
    more: Key = "9"


class UssdSettings(_Strict):
    """USSD channel settings."""

    navigation: UssdNavigation = UssdNavigation()
    max_gsm7: int = Field(default=182, ge=40, le=182, description="Page limit in GSM-7 septets.")
    max_ucs2: int = Field(default=80, ge=20, le=80, description="Page limit in UCS-2 characters.")
    max_failures: int = Field(default=3, ge=1, le=10)
    max_timeouts: int = Field(default=2, ge=1, le=10)


class IvrSettings(_Strict):
    """IVR channel settings."""

    navigation: IvrNavigation = IvrNavigation()
    voice: dict[str, str] = Field(default_factory=dict, description="TTS voice per language.")
    language_codes: dict[str, str] = Field(
        default_factory=dict, description="Speech language code per language (ru-RU)."
    )
    input_timeout: int = Field(default=5, ge=1, le=60, description="Seconds to wait for keys.")
    max_failures: int = Field(default=3, ge=1, le=10)
    max_timeouts: int = Field(default=3, ge=1, le=10)
    operator_destination: str = Field(default="", description="Where calls are transferred.")


class Channels(_Strict):
    """Per-channel settings."""

    ussd: UssdSettings = UssdSettings()
    ivr: IvrSettings = IvrSettings()


class EntryPoint(_Strict):
    """Where a channel's sessions start (``start``) and where ``home`` leads."""

    code: str = Field(description="USSD service code (*111*455#) or IVR number (0890).")
    start: NodeId
    home: NodeId


class Entry(_Strict):
    """Entry points per channel."""

    ussd: EntryPoint
    ivr: EntryPoint | None = None


class Variable(_Strict):
    """A placeholder's declared size, used to check page lengths in the worst case."""

    max_length: int = Field(ge=1, le=160, description="Longest rendered value.")
    unicode: bool | list[LanguageCode] = Field(
        default=False,
        description="May hold characters outside GSM-7 (true, or in these languages only).",
    )

    def is_unicode(self, language: str) -> bool:
        """True when the value may hold non-GSM-7 characters in ``language``."""
        return self.unicode if isinstance(self.unicode, bool) else language in self.unicode


class Option(_Strict):
    """One choice of a menu."""

    key: Key
    label: Text
    target: NodeId
    when: str | None = Field(default=None, description="Show only when this condition holds.")
    channels: list[Channel] | None = Field(default=None, description="Show on these only.")
    set: dict[NodeId, ArgValue] = Field(
        default_factory=dict, description="Variables set when chosen ($var or literal)."
    )


class PhoneValidator(_Strict):
    """A phone number, normalised to E.164."""

    type: Literal["phone"]
    region: str = "RU"


class IntegerValidator(_Strict):
    """A whole number in a range."""

    type: Literal["integer"]
    min: int = 0
    max: int = Field(default=1_000_000, le=10**9)


class RegexValidator(_Strict):
    """Text matching a regular expression entirely."""

    type: Literal["regex"]
    pattern: str
    max_length: int = Field(default=20, ge=1, le=64)


class PinValidator(_Strict):
    """A PIN of exactly ``length`` digits."""

    type: Literal["pin"]
    length: int = Field(default=4, ge=4, le=8)


Validator = Annotated[
    PhoneValidator | IntegerValidator | RegexValidator | PinValidator,
    Field(discriminator="type"),
]


class MenuNode(_Strict):
    """A title and numbered options."""

    kind: Literal["menu"]
    text: Text
    options: list[Option] = Field(min_length=1)


class InputNode(_Strict):
    """Collect a value into a variable."""

    kind: Literal["input"]
    text: Text
    var: NodeId
    validator: Validator
    error: Text = "invalid_input"
    next: NodeId
    on_failure: NodeId | None = Field(
        default=None, description="Where too many failures lead (default: the operator node)."
    )


class ConfirmNode(_Strict):
    """A yes/no question."""

    kind: Literal["confirm"]
    text: Text
    yes: NodeId
    no: NodeId


class ActionNode(_Strict):
    """Run an operation and branch on its result code."""

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


class ListNode(_Strict):
    """Options built from an operation's ``items``, paginated."""

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


class MessageNode(_Strict):
    """A final screen."""

    kind: Literal["message"]
    text: Text


class OperatorNode(_Strict):
    """Hand the session to a human, with a reason."""

    kind: Literal["operator"]
    text: Text
    reason: str = "caller_request"


class Route(_Strict):
    """One branch of a route."""

    when: str
    target: NodeId


class RouteNode(_Strict):
    """Branch on conditions without showing anything."""

    kind: Literal["route"]
    routes: list[Route] = Field(min_length=1)
    default: NodeId


Node = Annotated[
    MenuNode
    | InputNode
    | ConfirmNode
    | ActionNode
    | ListNode
    | MessageNode
    | OperatorNode
    | RouteNode,
    Field(discriminator="kind"),
]
FINAL_KINDS = frozenset({"message", "operator"})
INTERACTIVE_KINDS = frozenset({"menu", "input", "confirm", "list"})


class Sms(_Strict):
    """SMS reply texts and notification templates, by name."""

    replies: dict[str, Text] = Field(default_factory=dict)
    notifications: dict[str, Text] = Field(default_factory=dict)


class MenuFile(_Strict):
    """The whole of ``menu_definitions.yaml``."""

    version: int | str
    languages: list[LanguageCode] = Field(min_length=1)
    default_language: LanguageCode
    entry: Entry
    channels: Channels = Channels()
    operator: NodeId = Field(description="Node for handoffs: operator key, failure counters.")
    unavailable: NodeId = Field(description="Node when an operation is unavailable.")
    variables: dict[str, Variable] = Field(default_factory=dict)
    texts: dict[str, LocalText] = Field(default_factory=dict)
    nodes: dict[NodeId, Node] = Field(min_length=1)
    sms: Sms = Sms()
