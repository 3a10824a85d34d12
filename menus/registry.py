"""Every loaded menu version, by content hash: sessions keep the version they started on."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from menus.engine import Menu
from menus.errors import MenuError, UnknownVersionError
from menus.operations import NO_OPERATIONS, OperationTable
from menus.validate import load_menu


class MenuRegistry:
    """The live menu version plus every version loaded before it.

    ``reload`` validates the new file first: an invalid file raises MenuError
    and the live version stays. Swapping is a single reference assignment, so
    readers never see a half-loaded menu. Every version is validated against
    the same operation table (the first menu's, unless ``operations`` says).
    """

    def __init__(
        self,
        menu: Menu,
        service_texts: Sequence[str] = (),
        operations: OperationTable | None = None,
        sms_replies: Sequence[str] = (),
    ) -> None:
        self.service_texts = tuple(service_texts)
        self.operations = menu.operations if operations is None else operations
        self.sms_replies = tuple(sms_replies)
        self._versions: dict[str, Menu] = {menu.version: menu}
        self._current = menu
        self._lock = threading.Lock()

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        service_texts: Sequence[str] = (),
        operations: OperationTable = NO_OPERATIONS,
        sms_replies: Sequence[str] = (),
    ) -> MenuRegistry:
        """A registry whose first version is the file at ``path`` (raises MenuError).

        Every version it loads must define ``service_texts`` besides the
        engine's texts and the ``sms_replies``, and may name only operations
        of ``operations``.
        """
        menu = load_menu(path, service_texts, operations, sms_replies)
        return cls(menu, service_texts, operations, sms_replies)

    @property
    def current(self) -> Menu:
        """The version new sessions start on."""
        return self._current

    @property
    def versions(self) -> list[str]:
        """Every loaded version id, oldest first."""
        return list(self._versions)

    def get(self, version: str) -> Menu:
        """The menu of ``version``; raises UnknownVersionError (e.g. after a restart)."""
        try:
            return self._versions[version]
        except KeyError:
            raise UnknownVersionError(version) from None

    def reload(self, path: str | Path) -> Menu:
        """Load ``path`` and make it current; on MenuError the current version stays."""
        # Raises MenuError before anything changes.
        menu = load_menu(path, self.service_texts, self.operations, self.sms_replies)
        with self._lock:
            self._current = self._versions.setdefault(menu.version, menu)
        return self._current


__all__ = ["MenuError", "MenuRegistry"]
