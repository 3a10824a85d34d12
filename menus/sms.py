"""SMS replies and notification templates from the ``sms`` section of a menu file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from menus.engine import Menu
from menus.errors import UnknownTemplateError


def render_sms(menu: Menu, name: str, language: str, variables: Mapping[str, Any]) -> str:
    """The text of SMS template ``name`` (a reply or a notification) in ``language``.

    An unknown language falls back to the menu's default language; an unknown
    name raises UnknownTemplateError.
    """
    sms = menu.model.sms
    text = sms.replies.get(name) or sms.notifications.get(name)
    if text is None:
        raise UnknownTemplateError(name)
    if language not in menu.model.languages:
        language = menu.model.default_language
    return menu.text(text).render(language, variables)
