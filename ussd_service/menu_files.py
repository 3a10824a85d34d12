"""The service's menu files: loaded and checked with everything the service needs of them.

A menu file must define the dialogue's own texts and the SMS desk's replies,
and may name only the operations of the service's registry. Every command and
the app load menus through here, so a file the service cannot run is refused
at load (and on a SIGHUP reload), never at the first hop that needs it.
"""

from __future__ import annotations

from pathlib import Path

from menus import Diagnostic, MenuRegistry, validate_file
from ussd_service.dialogue import DIALOGUE_TEXTS
from ussd_service.menu_operations import menu_operations
from ussd_service.sms_desk import REPLY_NAMES

#: The ``sms.replies`` the SMS desk answers with, in a stable order.
SMS_REPLIES = tuple(sorted(REPLY_NAMES))


def load_menus(path: str | Path) -> MenuRegistry:
    """The registry of the menu file at ``path`` (raises MenuError with the findings)."""
    return MenuRegistry.from_file(path, DIALOGUE_TEXTS, menu_operations(), SMS_REPLIES)


def check_menu_file(path: str | Path) -> list[Diagnostic]:
    """Every finding for the menu file at ``path``, as the service would load it."""
    return validate_file(path, DIALOGUE_TEXTS, menu_operations(), SMS_REPLIES)
