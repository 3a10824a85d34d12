"""Menus: the YAML menu language, its validator, and the engine that steps sessions.

No HTTP, Redis or SQL here. ``ussd_service`` loads a file with ``load_menu`` (or
keeps versions in a ``MenuRegistry``), then per hop takes a ``Turn``
(``Menu.turn_start`` / ``turn_step`` / ``turn_show``), runs each
``PendingOperation`` it names and resumes it, and renders the ``Screen``.
``Menu.start`` / ``step`` / ``show`` do the same with an ``Operations`` binding.
Node kinds are the modules of ``menus.nodes``. See ``menus/README.md`` for the
language reference.
"""

from __future__ import annotations

from menus.engine import Menu, OperationCall, SessionState, StepResult, parse_shortcut
from menus.errors import Diagnostic, MenuError, UnknownTemplateError, UnknownVersionError
from menus.nodes import KINDS, Edge, NodeKind, edges_of
from menus.operations import (
    NO_OPERATIONS,
    OK,
    UNAVAILABLE,
    OperationResult,
    Operations,
    OperationSpec,
    OperationTable,
    PendingOperation,
)
from menus.registry import MenuRegistry
from menus.schema import json_schema
from menus.screen import Handoff, IvrHints, Prompt, Screen
from menus.sms import render_sms
from menus.turn import Turn
from menus.validate import load_menu, validate_file, validate_text

__all__ = [
    "KINDS",
    "NO_OPERATIONS",
    "OK",
    "UNAVAILABLE",
    "Diagnostic",
    "Edge",
    "Handoff",
    "IvrHints",
    "Menu",
    "MenuError",
    "MenuRegistry",
    "NodeKind",
    "OperationCall",
    "OperationResult",
    "OperationSpec",
    "OperationTable",
    "Operations",
    "PendingOperation",
    "Prompt",
    "Screen",
    "SessionState",
    "StepResult",
    "Turn",
    "UnknownTemplateError",
    "UnknownVersionError",
    "edges_of",
    "json_schema",
    "load_menu",
    "parse_shortcut",
    "render_sms",
    "validate_file",
    "validate_text",
]
