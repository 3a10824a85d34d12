"""Menus: the YAML menu language, its validator, and the engine that steps sessions.

No HTTP, Redis or SQL here. ``ussd_service`` loads a file with ``load_menu`` (or
keeps versions in a ``MenuRegistry``), then per hop calls ``Menu.start`` /
``Menu.step`` with an ``Operations`` binding, and renders the ``Screen``.
See ``menus/README.md`` for the language reference.
"""

from __future__ import annotations

from menus.engine import Menu, OperationCall, SessionState, StepResult, parse_shortcut
from menus.errors import Diagnostic, MenuError, UnknownTemplateError, UnknownVersionError
from menus.operations import OK, OPERATIONS, UNAVAILABLE, OperationResult, Operations
from menus.registry import MenuRegistry
from menus.schema import json_schema
from menus.screen import Handoff, IvrHints, Prompt, Screen
from menus.sms import render_sms
from menus.validate import load_menu, validate_file, validate_text

__all__ = [
    "OK",
    "OPERATIONS",
    "UNAVAILABLE",
    "Diagnostic",
    "Handoff",
    "IvrHints",
    "Menu",
    "MenuError",
    "MenuRegistry",
    "OperationCall",
    "OperationResult",
    "Operations",
    "Prompt",
    "Screen",
    "SessionState",
    "StepResult",
    "UnknownTemplateError",
    "UnknownVersionError",
    "json_schema",
    "load_menu",
    "parse_shortcut",
    "render_sms",
    "validate_file",
    "validate_text",
]
