"""Conversation files: the YAML a designer writes, read into test cases.

Each conversation expands into one ``Conversation`` per channel, gateway and
language it names. Every problem with a file is a ``ConversationFileError``
that names the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from designer.simulator.phone import DEFAULT_DIALECTS
from ussd_service.channels import DIALECTS
from ussd_service.hop import normalise_msisdn

CHANNELS = ("ussd", "ivr", "sms")
DEFAULT_CHANNEL = "ussd"
DEFAULT_LANGUAGES = ("ru",)
DEFAULT_MSISDN = "+79161000001"
# Steps that take no argument (a bare word in the YAML list).
BARE_STEPS = frozenset(
    {"dial", "timeout", "hangup", "expect_end", "expect_continue", "expect_operator"}
)
ARG_STEPS = frozenset(
    {
        "dial",
        "send",
        "sms",
        "expect",
        "expect_regex",
        "expect_not",
        "expect_exact",
        "expect_balance",
        "expect_balance_change",
        "expect_notification",
        "do",
    }
)
DO_ACTIONS = frozenset({"block", "enroll", "decline_pending_gifts", "withdraw_rewards", "accrue"})
GIVEN_FIELDS = frozenset(
    {
        "enrolled",
        "status",
        "balance",
        "pending_gifts",
        "sent_gifts",
        "subscribers",
        "catalog",
        "ledger",
    }
)
CONVERSATION_FIELDS = frozenset(
    {
        "name",
        "channel",
        "channels",
        "gateway",
        "gateways",
        "language",
        "languages",
        "msisdn",
        "given",
        "steps",
    }
)


class ConversationFileError(ValueError):
    """A conversation file that cannot be read; the message has FILE:LINE."""


class ConversationFailedError(AssertionError):
    """A conversation did not go as written; ``str()`` is the readable report."""


@dataclass(frozen=True)
class Step:
    """One step: ``kind`` with its argument (a text may be a mapping by language)."""

    kind: str
    arg: Any
    line: int

    def text(self, language: str) -> Any:
        """The argument in ``language`` when it is a mapping by language."""
        if isinstance(self.arg, Mapping) and self.kind != "do":
            if language not in self.arg:
                raise ConversationFailedError(
                    f"line {self.line}: {self.kind} has no text for language {language!r}"
                )
            return self.arg[language]
        return self.arg

    def describe(self, language: str) -> str:
        """The step as written, in one line."""
        value = self.text(language)
        if value is None or value is True:
            return self.kind
        return (
            f"{self.kind}: {value!r}" if self.kind.startswith("expect") else f"{self.kind} {value}"
        )


@dataclass(frozen=True)
class Conversation:
    """One conversation on one channel, over one gateway, in one language (a test case).

    ``gateway`` is the dialect the phone speaks; ``named_gateway`` puts it in
    the test id (when the conversation runs its channel over several).
    """

    name: str
    file: Path
    line: int
    channel: str
    language: str
    msisdn: str
    gateway: str
    given: Mapping[str, Any]
    steps: tuple[Step, ...]
    named_gateway: bool = False

    @property
    def variant(self) -> str:
        """``channel-language``, or ``channel-gateway-language`` when the gateway is named."""
        middle = f"-{self.gateway}" if self.named_gateway else ""
        return f"{self.channel}{middle}-{self.language}"

    @property
    def test_id(self) -> str:
        """``name[variant]``, e.g. ``gift_ok[ussd-ru]``."""
        return f"{self.name}[{self.variant}]"

    @property
    def where(self) -> str:
        """``FILE:LINE`` of the conversation."""
        return f"{shown_path(self.file)}:{self.line}"


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _as_list(value: Any, name: str, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConversationFileError(f"{where}: {name} must be a name or a list of names")


def _names(
    raw: Mapping[str, Any], defaults: Mapping[str, Any], name: str, fallback: list[str], where: str
) -> list[str]:
    """``names`` or ``name`` from the conversation, else from the file's defaults."""
    for source in (raw, defaults):
        for key in (f"{name}s", name):
            if key in source:
                return _as_list(_plain(source[key]), name, where)
    return fallback


def _gateways(names: list[str], channels: list[str], where: str) -> dict[str, list[str]]:
    """The gateways of each channel: those named for it, else the channel's default."""
    spoken = {d.name: d.channel for d in DIALECTS if d.session or d.sms_client}
    for name in names:
        if name not in spoken:
            raise ConversationFileError(
                f"{where}: unknown gateway {name!r} (known: {', '.join(sorted(spoken))})"
            )
        if spoken[name] not in channels:
            raise ConversationFileError(
                f"{where}: gateway {name!r} speaks {spoken[name]}, not {', '.join(channels)}"
            )
    return {
        channel: [n for n in names if spoken[n] == channel] or [DEFAULT_DIALECTS[channel]]
        for channel in channels
    }


def _parse_step(raw: Any, line: int, where: str) -> Step:
    if isinstance(raw, str):
        if raw not in BARE_STEPS:
            raise ConversationFileError(f"{where}: unknown step {raw!r}")
        return Step(raw, None, line)
    if isinstance(raw, Mapping) and len(raw) == 1:
        kind, arg = next(iter(raw.items()))
        if kind not in ARG_STEPS and kind not in BARE_STEPS:
            known = ", ".join(sorted(ARG_STEPS | BARE_STEPS))
            raise ConversationFileError(f"{where}: unknown step {kind!r} (known: {known})")
        arg = _plain(arg)
        if kind == "do":
            action = next(iter(arg)) if isinstance(arg, Mapping) else arg
            if action not in DO_ACTIONS:
                raise ConversationFileError(
                    f"{where}: unknown do action {action!r} (known: {sorted(DO_ACTIONS)})"
                )
        if kind in {"send", "sms"} and isinstance(arg, int | float):
            arg = str(arg)
        return Step(str(kind), arg, line)
    raise ConversationFileError(f"{where}: a step is a name or a one-key mapping, not {raw!r}")


def _steps(raw_steps: Any, path: Path, line: int) -> tuple[Step, ...]:
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConversationFileError(f"{path}:{line}: steps must be a non-empty list")
    steps = []
    for index, item in enumerate(raw_steps):
        step_line = line
        if isinstance(raw_steps, CommentedSeq):
            step_line = int(raw_steps.lc.item(index)[0]) + 1
        steps.append(_parse_step(item, step_line, f"{path}:{step_line}"))
    return tuple(steps)


def _expand(
    raw: Mapping[str, Any], defaults: Mapping[str, Any], path: Path, line: int
) -> list[Conversation]:
    where = f"{path}:{line}"
    unknown = set(raw) - CONVERSATION_FIELDS
    if unknown:
        raise ConversationFileError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConversationFileError(f"{where}: name must be letters, digits, _ . - (got {name!r})")
    channels = _names(raw, defaults, "channel", [DEFAULT_CHANNEL], where)
    for channel in channels:
        if channel not in CHANNELS:
            raise ConversationFileError(f"{where}: unknown channel {channel!r}")
    gateways = _gateways(_names(raw, defaults, "gateway", [], where), channels, where)
    languages = _names(raw, defaults, "language", list(DEFAULT_LANGUAGES), where)
    # A conversation's own ``given`` replaces the file's default state whole.
    given = _plain(raw["given"] if "given" in raw else defaults.get("given")) or {}
    if set(given) - GIVEN_FIELDS:
        raise ConversationFileError(
            f"{where}: unknown given field(s) {sorted(set(given) - GIVEN_FIELDS)}"
        )
    try:
        msisdn = normalise_msisdn(str(raw.get("msisdn", defaults.get("msisdn", DEFAULT_MSISDN))))
    except ValueError as exc:
        raise ConversationFileError(f"{where}: {exc}") from None
    steps = _steps(raw.get("steps"), path, line)
    return [
        Conversation(
            name=name,
            file=path,
            line=line,
            channel=channel,
            language=language,
            msisdn=msisdn,
            gateway=gateway,
            given=given,
            steps=steps,
            named_gateway=len(gateways[channel]) > 1,
        )
        for channel in channels
        for gateway in gateways[channel]
        for language in languages
    ]


def load_file(path: Path) -> list[Conversation]:
    """Every conversation of a file, expanded per channel, gateway and language."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ConversationFileError(f"{path}: {exc}") from None
    if not isinstance(data, CommentedMap) or "conversations" not in data:
        raise ConversationFileError(f"{path}:1: expected a mapping with 'conversations'")
    defaults = data.get("defaults") or {}
    items = data["conversations"]
    if not isinstance(items, CommentedSeq):
        raise ConversationFileError(f"{path}: conversations must be a list")
    found: list[Conversation] = []
    seen: set[str] = set()
    for index, raw in enumerate(items):
        line = int(items.lc.item(index)[0]) + 1
        if not isinstance(raw, Mapping):
            raise ConversationFileError(f"{path}:{line}: a conversation is a mapping")
        for conversation in _expand(raw, defaults, path, line):
            if conversation.test_id in seen:
                raise ConversationFileError(f"{path}:{line}: duplicate {conversation.test_id}")
            seen.add(conversation.test_id)
            found.append(conversation)
    return found
