"""The canonical hop (what every gateway dialect turns its request into) and its answer."""

from __future__ import annotations

import enum
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ledger import DEFAULT_SETTINGS, try_normalize_msisdn
from menus.engine import parse_shortcut
from menus.operations import Operations
from menus.screen import Screen
from menus.state import StepResult
from session_store.dropoff import DropoffEvent, DropoffKind

# Numbers people and gateways send without a country code: the ledger's region
# (one constant for the whole service).
DEFAULT_REGION = DEFAULT_SETTINGS.default_region
# The longest USSD string a handset can send (GSM 03.90 / 3GPP TS 23.090).
MAX_USSD_INPUT = 182
MAX_SESSION_ID = 128
MAX_HOP_ID = 256


class HopKind(enum.StrEnum):
    """Why the gateway called."""

    BEGIN = "begin"  # the subscriber dialled (or the call was answered)
    INPUT = "input"  # the subscriber answered the screen
    TIMEOUT = "timeout"  # the subscriber did not answer in time (IVR)
    ABORT = "abort"  # the session ended on the gateway's side


class MalformedRequestError(ValueError):
    """A gateway request the service cannot use; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One request of a subscriber's session, whatever gateway sent it.

    ``hop_id`` is stable across a gateway's retries of the same hop.
    ``input_after`` is set by gateways that send every input so far
    (``1*2*3``) instead of the last one: given the hop id the session answered
    last (this dialect's own), it returns the new input. ``shortcut`` holds
    the inputs dialled after the service code (``*111*455*3#``) on BEGIN.
    ``service`` is what the subscriber reached (a number called), when the
    gateway says and a reply must repeat it. ``reports_drops`` is False for
    gateways that never say when a session ended, so the dialogue keeps the
    resume pointer current on every hop.
    """

    channel: str
    gateway: str
    session_id: str
    msisdn: str
    kind: HopKind
    hop_id: str
    input: str = ""
    input_after: Callable[[str | None], str] | None = None
    service: str = ""
    shortcut: tuple[str, ...] = ()
    reports_drops: bool = True


def normalise_msisdn(raw: str, field: str = "msisdn") -> str:
    """E.164 form of a number as people and gateways type it (the ledger's rules)."""
    number = _e164(raw)
    if number is None:
        raise MalformedRequestError(f"{field} is not a valid phone number")
    return number


@functools.lru_cache(maxsize=65_536)
def _e164(raw: str) -> str | None:
    # phonenumbers takes ~50-100 us a number; a session sends the same one every hop.
    return try_normalize_msisdn(raw, DEFAULT_REGION)


def shortcut_inputs(service_code: str, base_code: str) -> tuple[str, ...]:
    """Inputs dialled after ``base_code``: ``*111*455*3*100#`` -> ``("3", "100")``."""
    code = "".join(service_code.split())
    if not code.endswith("#"):
        # Some gateways drop the closing hash from serviceCode.
        code += "#"
    return tuple(parse_shortcut(code, base_code) or ())


class OperationsFactory(Protocol):
    """Binds the operations port to one subscriber and one idempotency-key prefix."""

    def __call__(
        self, msisdn: str, key_prefix: str, language: str | None = None
    ) -> Operations: ...


HandoffSink = Callable[["HandoffNeeded"], Awaitable[int | None]]


@dataclass(frozen=True)
class HandoffNeeded:
    """A session that ended at an operator: what the sink must record."""

    key: str
    hop: Hop
    language: str
    reason: str
    breadcrumb: tuple[str, ...]
    ops: Operations


@dataclass(frozen=True)
class Deadlines:
    """How long a whole hop may take, per channel, well inside the gateways' budgets."""

    ussd_s: float = 4.0
    ivr_s: float = 10.0

    def for_channel(self, channel: str) -> float:
        """The budget of one hop on ``channel``."""
        return self.ivr_s if channel == "ivr" else self.ussd_s


@dataclass(frozen=True)
class Answer:
    """The reply to a hop: the screen, the session's hop counter, a handoff id.

    ``events`` are the drop-off counts the hop adds once its state is saved.
    """

    screen: Screen
    seq: int
    handoff_id: int | None = None
    outcome: str = "ok"
    events: tuple[DropoffEvent, ...] = ()


def dropoff_events(
    version: str, before: str | None, kind: HopKind, result: StepResult
) -> tuple[DropoffEvent, ...]:
    """What one stepped hop means for the drop-off report of ``version``."""
    after = result.state.node
    events: list[DropoffEvent] = []
    if before is not None and kind is HopKind.TIMEOUT and after == before:
        events.append(DropoffEvent(version, before, DropoffKind.TIMEOUT))
    elif before is not None and not result.accepted and after == before:
        events.append(DropoffEvent(version, before, DropoffKind.INVALID))
    if after != before:
        if before is not None:
            events.append(DropoffEvent(version, before, DropoffKind.EXIT, after))
        events.append(DropoffEvent(version, after, DropoffKind.ENTRY))
    if result.screen.handoff is not None:
        events.append(DropoffEvent(version, after, DropoffKind.HANDOFF))
    elif result.screen.final:
        events.append(DropoffEvent(version, after, DropoffKind.COMPLETE))
    return tuple(events)
