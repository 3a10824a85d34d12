"""The menu language as pydantic models: what ``menu_definitions.yaml`` may contain.

File-level models live here; each node kind's model lives in its own module
of ``menus.nodes``, and ``Node`` is the discriminated union of every kind
found there. Structure only; cross-references (targets, texts, operations,
lengths) are checked by ``menus.validate``. The JSON Schema of the language is
generated from these models (``menus.json_schema``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, PrivateAttr

from menus.fields import (
    CHANNELS,
    ArgValue,
    Channel,
    Key,
    LanguageCode,
    LocalText,
    NodeId,
    StrictModel,
    Text,
)
from menus.nodes import KINDS, Edge, NodeKind

# The existing kinds' models, importable from here as before (a new kind need
# not be added: code that is generic over kinds uses ``menus.nodes.KINDS``).
from menus.nodes.action import ActionNode
from menus.nodes.confirm import ConfirmNode
from menus.nodes.input import (
    InputNode,
    IntegerValidator,
    PhoneValidator,
    PinValidator,
    RegexValidator,
    Validator,
)
from menus.nodes.list import ListNode
from menus.nodes.menu import MenuNode, Option
from menus.nodes.message import MessageNode
from menus.nodes.operator import OperatorNode
from menus.nodes.route import Route, RouteNode


class UssdNavigation(StrictModel):
    """Keys that work on every USSD screen."""

    back: Key = "0"
    home: Key = "00"
    more: Key = "99"


class IvrNavigation(StrictModel):
    """Keys that work on every IVR prompt."""

    repeat: Key = "*"
    back: Key = "#"
    operator: Key = "0"
    more: Key = "9"


class UssdSettings(StrictModel):
    """USSD channel settings."""

    navigation: UssdNavigation = UssdNavigation()
    max_gsm7: int = Field(default=182, ge=40, le=182, description="Page limit in GSM-7 septets.")
    max_ucs2: int = Field(default=80, ge=20, le=80, description="Page limit in UCS-2 characters.")
    max_failures: int = Field(default=3, ge=1, le=10)
    max_timeouts: int = Field(default=2, ge=1, le=10)


class IvrSettings(StrictModel):
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


class Channels(StrictModel):
    """Per-channel settings."""

    ussd: UssdSettings = UssdSettings()
    ivr: IvrSettings = IvrSettings()


class EntryPoint(StrictModel):
    """Where a channel's sessions start (``start``) and where ``home`` leads."""

    code: str = Field(description="USSD service code (*111*455#) or IVR number (0890).")
    start: NodeId
    home: NodeId


class Entry(StrictModel):
    """Entry points per channel."""

    ussd: EntryPoint
    ivr: EntryPoint | None = None


class Variable(StrictModel):
    """A placeholder's declared size, used to check page lengths in the worst case."""

    max_length: int = Field(ge=1, le=160, description="Longest rendered value.")
    unicode: bool | list[LanguageCode] = Field(
        default=False,
        description="May hold characters outside GSM-7 (true, or in these languages only).",
    )

    def is_unicode(self, language: str) -> bool:
        """True when the value may hold non-GSM-7 characters in ``language``."""
        return self.unicode if isinstance(self.unicode, bool) else language in self.unicode


if TYPE_CHECKING:
    # Statically a node is any kind: code reaches kinds through NodeKind's methods.
    Node = NodeKind
else:
    Node = Annotated[functools.reduce(operator.or_, KINDS.values()), Field(discriminator="kind")]
FINAL_KINDS = frozenset(name for name, kind in KINDS.items() if kind.final)
INTERACTIVE_KINDS = frozenset(name for name, kind in KINDS.items() if kind.remembered)


class Sms(StrictModel):
    """SMS reply texts and notification templates, by name."""

    replies: dict[str, Text] = Field(default_factory=dict)
    notifications: dict[str, Text] = Field(default_factory=dict)


class MenuFile(StrictModel):
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

    _graph: dict[str, tuple[Edge, ...]] | None = PrivateAttr(default=None)

    def graph(self) -> Mapping[str, tuple[Edge, ...]]:
        """Every node's edges, computed once per file (validator, compiler and tools share them)."""
        if self._graph is None:
            self._graph = {node_id: node.edges(self) for node_id, node in self.nodes.items()}
        return self._graph


__all__ = [
    "CHANNELS",
    "FINAL_KINDS",
    "INTERACTIVE_KINDS",
    "ActionNode",
    "ArgValue",
    "Channel",
    "Channels",
    "ConfirmNode",
    "Edge",
    "Entry",
    "EntryPoint",
    "InputNode",
    "IntegerValidator",
    "IvrNavigation",
    "IvrSettings",
    "Key",
    "LanguageCode",
    "ListNode",
    "LocalText",
    "MenuFile",
    "MenuNode",
    "MessageNode",
    "Node",
    "NodeId",
    "NodeKind",
    "OperatorNode",
    "Option",
    "PhoneValidator",
    "PinValidator",
    "RegexValidator",
    "Route",
    "RouteNode",
    "Sms",
    "Text",
    "UssdNavigation",
    "UssdSettings",
    "Validator",
    "Variable",
]
